//go:build !linux

package kubetest

import (
	"os"
	"runtime"
	"syscall"
)

const supported = false

var sigterm = os.Interrupt

func sysProcAttr() *syscall.SysProcAttr { return nil }
func goarchForEtcd() string             { return runtime.GOARCH }
