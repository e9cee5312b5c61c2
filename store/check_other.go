//go:build !unix

package store

// writable is not checked where there is no access(2): the store's
// exclusive open is Unix-only anyway.
func writable(path string) error { return nil }
