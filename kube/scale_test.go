package kube

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vmreconcile/vmreconcile/internal/kubesim"
	"github.com/vmreconcile/vmreconcile/internal/scale"
	"github.com/vmreconcile/vmreconcile/kubetest"
)

// scaleNodes is the cluster size of the scale benchmarks.
const scaleNodes = 5000

// BenchmarkObserve5000Sim is one audit's Observe (the audit's default
// options: a 10-minute event lookback, no window) of a 5,000-Node cluster
// served by kubesim in process (JSON over loopback TLS; client and server
// in the same heap and B/op). Each Node has its kubelet's Starting event.
// See benchObserve for the reported metrics.
func BenchmarkObserve5000Sim(b *testing.B) {
	s := kubesim.New(kubesim.Options{})
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	s.Populate(scaleNodes, "n")
	benchObserve(b, s.RESTConfig(), scaleNodes, nil)
}

// BenchmarkObserve5000APIServer is the same Observe against the real
// kube-apiserver v1.37.2 on etcd (kubetest; skipped with the reason when
// they are not installed, as kubetest's tests are). The 5,000 Nodes (each
// as its kubelet registers it, with a Ready status) and their Starting
// events are created before the timed region, 8 at a time; the server
// answers in protobuf, as to the audit.
func BenchmarkObserve5000APIServer(b *testing.B) {
	srv := kubetest.NewServer(b, kubetest.Options{})
	cfg, err := srv.RESTConfig()
	if err != nil {
		b.Fatal(err)
	}
	started := time.Now()
	if err := createNodes(b.Context(), cfg, scaleNodes, 8); err != nil {
		b.Fatal(err)
	}
	b.Logf("created %d Nodes and their events in %s", scaleNodes, time.Since(started).Round(time.Second))
	benchObserve(b, cfg, scaleNodes, childrenCPU)
}

// benchObserve times Observe with the audit's default options through a
// client of cfg, checking that it sees all nodes. Besides ns/op, B/op and
// allocs/op it reports cpu-ns/op (this process's CPU time), req/op (HTTP
// requests per Observe, counted by a wrapped transport), peak-heap-B (how
// far the heap rose above the fixture during one Observe, sampled),
// kept-heap-B (what the result keeps alive) and, with serverCPU,
// server-cpu-ns/op (the CPU time serverCPU counts: an API server in other
// processes).
func benchObserve(b *testing.B, cfg *rest.Config, nodes int, serverCPU func() time.Duration) {
	b.Helper()
	var requests atomic.Int64
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			requests.Add(1)
			return rt.RoundTrip(r)
		})
	})
	c, err := NewClientFromConfig("scale", cfg, 30*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	opts := ObserveOptions{Lookback: 10 * time.Minute}
	peak, kept := scale.HeapPeak(func() any {
		cl, err := Observe(b.Context(), c, opts)
		if err != nil {
			b.Fatal(err)
		}
		if len(cl.Nodes) != nodes || cl.Events != nodes || cl.Samples != 1 {
			b.Fatalf("observed %d Nodes, %d events, %d samples; want %d, %d, 1", len(cl.Nodes), cl.Events, cl.Samples, nodes, nodes)
		}
		return cl
	})
	if serverCPU == nil {
		serverCPU = func() time.Duration { return 0 }
	}
	requests.Store(0)
	b.ResetTimer()
	cpu, srvCPU := scale.CPU(), serverCPU()
	for b.Loop() {
		if _, err := Observe(b.Context(), c, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(scale.CPU()-cpu)/float64(b.N), "cpu-ns/op")
	if d := serverCPU() - srvCPU; d > 0 {
		b.ReportMetric(float64(d)/float64(b.N), "server-cpu-ns/op")
	}
	b.ReportMetric(float64(requests.Load())/float64(b.N), "req/op")
	b.ReportMetric(float64(peak), "peak-heap-B")
	b.ReportMetric(float64(kept), "kept-heap-B")
}

// createNodes creates n Nodes named n-0000 ... as kubesim.Populate does,
// each with a Starting event in the default namespace, with workers
// requests in flight.
func createNodes(ctx context.Context, cfg *rest.Config, n, workers int) error {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0 // no client-side limit
	cfg.Timeout = time.Minute
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := createNode(ctx, cs, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		})
	}
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	return first
}

func createNode(ctx context.Context, cs kubernetes.Interface, i int) error {
	now := time.Now()
	name := fmt.Sprintf("n-%04d", i)
	node := kubesim.NewNode(name, kubesim.RandomIdentity(name, fmt.Sprintf("10.%d.%d.%d", 100+i>>16, i>>8&255, i&255)), now)
	if _, err := cs.CoreV1().Nodes().Create(ctx, &node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Node %s: %w", name, err)
	}
	ev := kubesim.StartingEvent(name, now)
	ev.ObjectMeta = metav1.ObjectMeta{Name: name + ".starting", Namespace: metav1.NamespaceDefault}
	if _, err := cs.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, &ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create event for Node %s: %w", name, err)
	}
	return nil
}

// childrenCPU is the CPU time used so far by this process's running
// children (kubetest's etcd and kube-apiserver), from /proc (Linux; 0
// elsewhere), at the kernel's tick resolution (USER_HZ, 100 per second).
func childrenCPU() time.Duration {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, p := range stats {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15); comm may hold spaces.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 13 || f[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
