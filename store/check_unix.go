//go:build unix

package store

import "golang.org/x/sys/unix"

// writable asks the kernel whether this process may write path (permission
// bits, ACLs, a read-only file system), without opening it.
func writable(path string) error { return unix.Access(path, unix.W_OK) }
