//go:build !unix

package store

import "fmt"

type fileLock struct{}

func acquireLock(dbPath string) (*fileLock, error) {
	return nil, fmt.Errorf("store %s: exclusive open is supported on Unix only", dbPath)
}

func (l *fileLock) release() error { return nil }
