package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/internal/dockersim"
)

// tarpit accepts TCP connections and never answers (a vCenter stalled in its
// TLS handshake, a manager that accepts and hangs). It returns host:port.
func tarpit(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// TestNoHangs: every network call has a deadline (issue: audit hung forever
// on a vCenter stalling in the TLS handshake, and on a manager that accepts
// TCP but never answers), the error names the source that timed out, and
// SIGTERM ends a command promptly.
func TestNoHangs(t *testing.T) {
	sim := dockersim.New(dockersim.Options{})
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	vcPit, mgrPit := tarpit(t), tarpit(t)

	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"vcenter stalls in the handshake", []string{"audit", "-u", "https://user:S3cretPass@" + vcPit + "/sdk", "-k", "-H", sim.Host(), "-timeout", "2s"},
			[]string{"vcenter 127.0.0.1", "timed out"}},
		{"manager accepts and never answers", []string{"audit", "-H", "tcp://" + mgrPit, "-timeout", "2s"},
			[]string{"swarm tcp://" + mgrPit, "timed out"}},
	}
	t.Cleanup(func() {
		if !t.Failed() {
			t.Logf("reliability: %d network faults (stalled TLS handshake, tarpit manager) end within the deadline, naming the source; SIGTERM and SIGINT end a stalled command", len(cases))
		}
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := runBin(t, nil, tc.args...)
			if took := time.Since(start); took > time.Minute {
				t.Errorf("took %s", took)
			}
			if r.code != ExitRuntime {
				t.Errorf("exit %d, want 1: %s", r.code, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q lacks %q", r.stderr, w)
				}
			}
			if strings.Contains(r.stderr, "S3cretPass") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("stderr not one clean line: %q", r.stderr)
			}
		})
	}

	// SIGTERM while the login stalls (default deadline: a minute).
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(binPath, "audit", "-u", "https://user:S3cretPass@"+vcPit+"/sdk", "-k", "-H", sim.Host())
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "XDG_STATE_HOME=" + t.TempDir()}
			var se bytes.Buffer
			cmd.Stderr = &se
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			sent := time.Now()
			_ = cmd.Process.Signal(sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
				if took := time.Since(sent); took > 5*time.Second {
					t.Errorf("%s took %s to end the command", sig, took)
				}
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("%s did not end the command: %s", sig, se.String())
			}
			if cmd.ProcessState.ExitCode() == 0 {
				t.Errorf("exit 0 after %s", sig)
			}
		})
	}
}

// TestValidationGaps: values that used to be accepted, or to fail late
// with a raw error, are one line naming the value and the fix, exit 2.
func TestValidationGaps(t *testing.T) {
	u, _ := startVCSim(t)
	noUser := *u
	noUser.User = nil
	dir := t.TempDir()
	badCron := writeCfg(t, dir, "cron.yaml", "schedules:\n  audit: \"@every -5s\"\nswarms:\n  - hosts: [\"tcp://127.0.0.1:1\"]\n")
	// A store under a regular file (root can write anywhere else).
	unwritable := writeCfg(t, dir, "store.yaml", fmt.Sprintf("store:\n  path: %s\nswarms:\n  - hosts: [\"tcp://127.0.0.1:1\"]\n", filepath.Join(badCron, "state.db")))
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"-lookback far too long", []string{"audit", "-lookback", "876000h"}, []string{"-lookback", "876000h", "fix"}},
		{"-observe far too long", []string{"audit", "-observe", "876000h"}, []string{"-observe", "876000h", "fix"}},
		{"negative @every", []string{"daemon", "-config", badCron}, []string{"schedules.audit", "@every -5s"}},
		{"URL with an empty host", []string{"audit", "-u", "admin:S3cretPass@"}, []string{"-u:", "not a valid vCenter URL"}},
		{"URL with no user", []string{"audit", "-u", noUser.String(), "-k", "-H", "unix:///nonexistent.sock"}, []string{"-u:", "no user name", "GOVC_USERNAME"}},
		{"unwritable store", []string{"daemon", "-config", unwritable, "-once"}, []string{"store", "cron.yaml", "fix"}},
		{"-timeout zero", []string{"audit", "-timeout", "0s"}, []string{"-timeout", "fix"}},
	}
	t.Cleanup(func() {
		if !t.Failed() {
			t.Logf("reliability: %d more bad values (durations, schedules, URLs, store paths): one line, exit 2", len(cases))
		}
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runBin(t, nil, tc.args...)
			if r.code != ExitUsage {
				t.Errorf("exit %d, want 2: %s", r.code, r.stderr)
			}
			msg := strings.TrimSpace(r.stderr)
			if strings.Count(msg, "\n") != 0 || strings.Contains(msg, "S3cretPass") || strings.Contains(msg, "panic") {
				t.Errorf("stderr is not one clean line: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr %q lacks %q", msg, w)
				}
			}
		})
	}
}

// TestRemediateConfigVCenterNoPanic: remediate with the vCenter taken from
// the config file and -verify=false used to panic in govc's session cache
// when it read the tags (nil URL). Now the tags are read with the config's
// credentials; vcsim without its vAPI endpoint makes the tag read fail,
// which fails closed with a warning.
func TestRemediateConfigVCenterNoPanic(t *testing.T) {
	u, sim, _ := flappingWorld(t)
	cfg := writeCfg(t, t.TempDir(), "c.yaml", vcenterYAML(u)+fmt.Sprintf("swarms:\n  - hosts: [%q]\n", sim.Host()))
	r := runBin(t, nil, "remediate", "-config", cfg, "-verify=false", "-max-percent", "100", "-json")
	if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
		t.Fatalf("panic: %s", r.stderr)
	}
	if r.code != ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	p := decodeRemediation(t, r).Plan
	if len(p.Entries) != 0 || !strings.Contains(r.stderr, "tags not readable") {
		t.Errorf("tags unreadable must leave the candidates alone with a warning: entries %+v, stderr %s", p.Entries, r.stderr)
	}
}
