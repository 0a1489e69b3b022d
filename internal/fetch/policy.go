package fetch

import (
	"fmt"
	"net/netip"
)

// blocked are the networks a fetched URL may never reach: everything that is not the public
// internet, so a customer-supplied URL cannot make us talk to ourselves, our cloud's metadata
// service or the office network.
var blocked = mustPrefixes(
	// IPv4
	"0.0.0.0/8",       // "this network", 0.0.0.0 reaches the local host on Linux
	"10.0.0.0/8",      // RFC 1918
	"100.64.0.0/10",   // CGNAT (RFC 6598): often a provider's internal network
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, 169.254.169.254 cloud metadata
	"172.16.0.0/12",   // RFC 1918
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // TEST-NET-1
	"192.88.99.0/24",  // 6to4 relay anycast
	"192.168.0.0/16",  // RFC 1918
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // TEST-NET-2
	"203.0.113.0/24",  // TEST-NET-3
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, 255.255.255.255 broadcast included
	// IPv6
	"::/96",         // unspecified, loopback and the deprecated IPv4-compatible block
	"100::/64",      // discard-only
	"2001:db8::/32", // documentation
	"fc00::/7",      // unique local (the IPv6 private range)
	"fe80::/10",     // link-local
	"fec0::/10",     // deprecated site-local
	"ff00::/8",      // multicast
)

// Prefixes that embed an IPv4 address a gateway would forward to: checked against the IPv4 rules.
var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	nat64L  = netip.MustParsePrefix("64:ff9b:1::/48")
	sixTo4  = netip.MustParsePrefix("2002::/16")
	teredo  = netip.MustParsePrefix("2001::/32")
	loopV4  = netip.MustParsePrefix("127.0.0.0/8")
	loopV6  = netip.MustParsePrefix("::1/128")
	mapped4 = netip.MustParsePrefix("::ffff:0:0/96")
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// checkAddr says why addr may not be dialled, or nil. allowLoopback lets tests reach httptest
// servers; nothing else is ever allowed.
func checkAddr(addr netip.Addr, allowLoopback bool) error {
	if !addr.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrForbiddenAddress)
	}
	addr = addr.WithZone("")
	if mapped4.Contains(addr) {
		addr = addr.Unmap()
	}
	if allowLoopback && (loopV4.Contains(addr) || loopV6.Contains(addr)) {
		return nil
	}
	for _, p := range blocked {
		if p.Contains(addr) {
			return fmt.Errorf("%w: %s is in %s", ErrForbiddenAddress, addr, p)
		}
	}
	if embedded, ok := embeddedV4(addr); ok {
		if err := checkAddr(embedded, false); err != nil {
			return fmt.Errorf("%w (embedded in %s)", err, addr)
		}
	}
	return nil
}

// embeddedV4 extracts the IPv4 address a translation prefix carries, so that 64:ff9b::a9fe:a9fe
// is judged as 169.254.169.254.
func embeddedV4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case nat64L.Contains(a):
		// RFC 6052 /48: the IPv4 bytes straddle the u octet (byte 8).
		return netip.AddrFrom4([4]byte{b[6], b[7], b[9], b[10]}), true
	case sixTo4.Contains(a):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	case teredo.Contains(a):
		// Teredo stores the client's IPv4 address inverted in the last four bytes.
		return netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}), true
	}
	return netip.Addr{}, false
}
