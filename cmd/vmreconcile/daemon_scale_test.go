package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/internal/scale"
)

// BenchmarkDaemonProcess runs the vmreconcile binary as `daemon`, in its own
// process, over a vCenter of VMRECONCILE_BENCH_VMS VMs (default 3,000;
// vcsim), a swarm of 2,000 nodes (dockersim) and a Kubernetes cluster of
// 5,000 Nodes (kubesim), the simulators in this process. It waits for the
// daemon's first audit (its mirror synced), lets it settle for 10 s, and
// reports the daemon process's own figures from /proc: peak RSS (VmHWM),
// RSS after settling, and its CPU over 10 s without changes as a percentage
// of one core. ns/op is the time from start to the first audit done.
func BenchmarkDaemonProcess(b *testing.B) {
	dir := b.TempDir()
	cfg := scaleConfig(b, dir, scale.Start(b, scale.VMs(3000), nil))
	for b.Loop() {
		hwm, rss, idle := runDaemonProcess(b, cfg)
		b.ReportMetric(hwm, "peak-rss-MB")
		b.ReportMetric(rss, "rss-MB")
		b.ReportMetric(idle, "idle-%core")
	}
}

// scaleConfig writes the daemon's config for w.
func scaleConfig(b *testing.B, dir string, w scale.World) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	pw, _ := w.VCenter.User.Password()
	body := fmt.Sprintf("vcenters:\n  - url: %s://%s/sdk\n    username: %s\n    password: %s\n    insecure: true\n"+
		"swarms:\n  - name: sim\n    hosts: [%q]\nkubernetes:\n  - name: sim\n    kubeconfig: %s\n"+
		"listen: %s\nstore:\n  path: %s\nschedules:\n  audit: \"@every 24h\"\n  lineage: \"@every 24h\"\n",
		w.VCenter.Scheme, w.VCenter.Host, w.VCenter.User.Username(), pw, w.SwarmHost, w.Kubeconfig, addr, filepath.Join(dir, "state.db"))
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	return p
}

// runDaemonProcess starts the daemon, waits for its first audit and returns
// its peak and settled RSS (MB) and idle CPU (% of a core).
func runDaemonProcess(b *testing.B, cfg string) (hwm, rss, idle float64) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "daemon", "-config", cfg)
	cmd.Env = []string{"HOME=" + b.TempDir(), "PATH=" + os.Getenv("PATH")}
	if v := os.Getenv("VMRECONCILE_BENCH_GOMEMLIMIT"); v != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+v) // as contrib/systemd's unit sets it
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	addr := listenAddr(b, cfg)
	for !firstAuditDone(addr) {
		if ctx.Err() != nil {
			b.Fatal("the daemon recorded no audit")
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.StopTimer()
	defer b.StartTimer()
	pid := cmd.Process.Pid
	time.Sleep(10 * time.Second)
	cpu := procCPU(b, pid)
	time.Sleep(10 * time.Second)
	idle = float64(procCPU(b, pid)-cpu) / float64(10*time.Second) * 100
	return procStatusMB(b, pid, "VmHWM"), procStatusMB(b, pid, "VmRSS"), idle
}

func listenAddr(b *testing.B, cfg string) string {
	body, err := os.ReadFile(cfg)
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "listen: "); ok {
			return v
		}
	}
	b.Fatal("no listen address in the config")
	return ""
}

// firstAuditDone reads /metrics for a successful audit.
func firstAuditDone(addr string) bool {
	c := http.Client{Timeout: 5 * time.Second}
	res, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return false
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	return err == nil && strings.Contains(string(out), `vmreconcile_runs_total{result="ok",task="audit"} 1`)
}

// procCPU is the process's user+system CPU time from /proc/PID/stat.
func procCPU(b *testing.B, pid int) time.Duration {
	body, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at ')'.
	f := strings.Fields(string(body[strings.LastIndexByte(string(body), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// procStatusMB reads a kB field of /proc/PID/status, in MB.
func procStatusMB(b *testing.B, pid int, field string) float64 {
	body, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
