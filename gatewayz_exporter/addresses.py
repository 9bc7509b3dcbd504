"""How client addresses are grouped: the unit that shares a connection share and a login budget."""

from __future__ import annotations

import ipaddress

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix: IPv4 hosts seen over IPv6


def client_key(address: str | None) -> str:
    """An IPv4 address, or an IPv6 /64 (one host's usual allocation).

    IPv4-mapped and NAT64 addresses name the IPv4 host they carry: behind a NAT64
    gateway every IPv4 client shares one /64, and is told apart only by that.
    """
    if not address:
        return ""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if ip in _NAT64:
            return str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


def client_group(key: str) -> str:
    """The network a ``client_key`` belongs to, for failures spread over many keys: IPv4 /24, IPv6 /48."""
    try:
        network = ipaddress.ip_network(key, strict=False)
    except ValueError:
        return key
    prefix = 24 if network.version == 4 else 48
    return str(network.supernet(new_prefix=prefix)) if network.prefixlen > prefix else str(network)
