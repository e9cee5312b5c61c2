package kubetest

import (
	"runtime"
	"syscall"
)

const supported = true

var sigterm = syscall.SIGTERM

// sysProcAttr has the kernel SIGKILL etcd and kube-apiserver if the test
// process dies without running its cleanups (a panic or a -timeout kill).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// goarchForEtcd names this architecture for ETCD_UNSUPPORTED_ARCH: etcd
// 3.4 refuses to start on arm64 unless it is set.
func goarchForEtcd() string { return runtime.GOARCH }
