//go:build !linux

package swarmtest

import (
	"errors"
	"syscall"
)

const supported = false

var errUnsupported = errors.New("swarmtest: real dockerd engines need Linux")

func sysProcAttr() *syscall.SysProcAttr { return nil }
func killUnder(string) error            { return errUnsupported }
func unmountUnder(string) error         { return errUnsupported }
func killGroup(int)                     {}
func killChildrenFirst(string, int)     {}
