// Package scale holds what the scale benchmarks share: the simulated world
// the daemon benchmarks run over (a vcsim vCenter, a dockersim swarm, a
// kubesim cluster), the VM count they take from the environment, the
// process's CPU time and a sampled heap peak. It is test support only.
package scale

import (
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmware/govmomi/simulator"

	"github.com/vmreconcile/vmreconcile/internal/dockersim"
	"github.com/vmreconcile/vmreconcile/internal/kubesim"
)

// VMs is VMRECONCILE_BENCH_VMS rounded down to tens, or def when unset.
func VMs(def int) int {
	if n, err := strconv.Atoi(os.Getenv("VMRECONCILE_BENCH_VMS")); err == nil && n >= 10 {
		return n / 10 * 10
	}
	return def
}

// World is the simulated estate of the daemon's scale benchmarks.
type World struct {
	// VCenter is the vcsim SDK URL, with its credentials.
	VCenter *url.URL
	// SwarmHost is the dockersim manager (2,000 nodes).
	SwarmHost string
	// Kubeconfig is a kubeconfig file for the kubesim cluster (5,000 Nodes).
	Kubeconfig string
}

// modelCreate serializes vcsim model creation: Model.Create appends to a
// package variable of the simulator (EvalLicense) that another Create reads.
var modelCreate sync.Mutex

// CreateModel is model.Create, one at a time in this process.
func CreateModel(model *simulator.Model) error {
	modelCreate.Lock()
	defer modelCreate.Unlock()
	return model.Create()
}

// Start serves a vCenter of vms VMs (1 datacenter, a cluster of 2 hosts, 10
// resource pools), a swarm of 2,000 nodes and a Kubernetes cluster of
// 5,000 Nodes, all closed with tb. onSOAP, when set, is called for every
// request vcsim serves.
func Start(tb testing.TB, vms int, onSOAP func()) World {
	tb.Helper()
	model := simulator.VPX()
	model.Host, model.ClusterHost, model.Pool, model.Machine = 0, 2, 10, vms/10
	if err := CreateModel(model); err != nil {
		tb.Fatal(err)
	}
	srv := model.Service.NewServer()
	if onSOAP != nil {
		inner := srv.Config.Handler
		srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			onSOAP()
			inner.ServeHTTP(w, r)
		})
	}
	tb.Cleanup(func() { srv.Close(); model.Remove() })
	eng := dockersim.New(dockersim.Options{Self: dockersim.NodeSpec{Hostname: "mgr", NanoCPUs: 2e9, MemoryBytes: 4 << 30}})
	eng.Populate(1999, "worker-")
	if err := eng.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(eng.Close)
	ks := kubesim.New(kubesim.Options{})
	if err := ks.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ks.Close)
	ks.Populate(5000, "n")
	kubeconfig, err := ks.Kubeconfig(tb.TempDir(), "scale")
	if err != nil {
		tb.Fatal(err)
	}
	return World{VCenter: srv.URL, SwarmHost: eng.Host(), Kubeconfig: kubeconfig}
}

// CPU is the CPU time this process has used.
func CPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// HeapPeak runs f once after a GC and returns how far the heap (objects,
// live or not yet collected) rose above its level before f, sampled every
// 200µs, and how much of it f's result keeps alive after a GC.
func HeapPeak(f func() any) (peak, kept uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	runtime.GC()
	base := read()
	stop, done := make(chan struct{}), make(chan uint64)
	go func() {
		var top uint64
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			top = max(top, read())
			select {
			case <-stop:
				done <- top
				return
			case <-t.C:
			}
		}
	}()
	res := f()
	close(stop)
	top := max(<-done, read())
	runtime.GC()
	after := read()
	runtime.KeepAlive(res)
	if top > base {
		peak = top - base
	}
	if after > base {
		kept = after - base
	}
	return peak, kept
}
