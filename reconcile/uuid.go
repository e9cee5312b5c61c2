package reconcile

import "strings"

// UUIDMatches reports whether a and b name the same machine UUID: equal, or
// equal with the first three fields byte-swapped. A Kubernetes Node's
// status.nodeInfo.systemUUID is the guest's /sys/class/dmi/id/product_uuid,
// which Linux shows byte-swapped against the VM's BIOS UUID (the vSphere
// config.uuid) on older VM hardware versions:
//
//	BIOS UUID     4231a5c3-1d2e-3f40-8899-aabbccddeeff
//	product_uuid  c3a53142-2e1d-403f-8899-aabbccddeeff
//
// Case, hyphens and braces are ignored. Empty, malformed and all-zero UUIDs
// match nothing.
func UUIDMatches(a, b string) bool {
	ca, cb := canonUUID(a), canonUUID(b)
	if ca == "" || cb == "" {
		return false
	}
	return ca == cb || ca == swapUUID(cb)
}

// canonUUID returns a UUID as 32 lower-case hex digits, "" when it is not
// one (or is all zeros, which firmware reports when it has none).
func canonUUID(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(s)) {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'f':
			b.WriteRune(r)
		case r == '-' || r == '{' || r == '}':
		default:
			return ""
		}
	}
	h := b.String()
	if len(h) != 32 || strings.Trim(h, "0") == "" {
		return ""
	}
	return h
}

// swapUUID swaps the byte order of the first three fields (4, 2 and 2
// bytes) of a canonical UUID.
func swapUUID(h string) string {
	rev := func(s string) string {
		var b strings.Builder
		for i := len(s) - 2; i >= 0; i -= 2 {
			b.WriteString(s[i : i+2])
		}
		return b.String()
	}
	return rev(h[0:8]) + rev(h[8:12]) + rev(h[12:16]) + h[16:]
}
