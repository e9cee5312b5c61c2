package daemon

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// notifySocket listens as systemd does for sd_notify datagrams and returns
// the channel they arrive on.
func notifySocket(t *testing.T, name string) <-chan string {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return ch
}

func next(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
		return ""
	}
}

// TestNotifier: READY=1, WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1
// over a unixgram socket, a path or an abstract name; nothing without
// NOTIFY_SOCKET, no watchdog for another process's WATCHDOG_PID.
func TestNotifier(t *testing.T) {
	for _, sock := range []string{filepath.Join(t.TempDir(), "notify"), "@vmreconcile-test-" + strconv.Itoa(os.Getpid())} {
		ch := notifySocket(t, sock)
		t.Setenv("NOTIFY_SOCKET", sock)
		t.Setenv("WATCHDOG_USEC", "200000")
		t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
		n := NewNotifier()
		if got := n.WatchdogInterval(); got != 100*time.Millisecond {
			t.Errorf("%s: watchdog interval %s, want 100ms (half of WATCHDOG_USEC)", sock, got)
		}
		if err := n.Ready(); err != nil {
			t.Fatal(err)
		}
		if m := next(t, ch); m != "READY=1" {
			t.Errorf("%s: first notification %q, want READY=1", sock, m)
		}
		ctx, cancel := context.WithCancel(context.Background())
		alive := 0
		done := make(chan struct{})
		go func() { n.Watchdog(ctx, func() { alive++ }); close(done) }()
		for range 3 {
			if m := next(t, ch); m != "WATCHDOG=1" {
				t.Errorf("%s: %q, want WATCHDOG=1", sock, m)
			}
		}
		cancel()
		<-done
		if alive < 3 {
			t.Errorf("alive called %d times for 3 pings", alive)
		}
		if err := n.Stopping(); err != nil {
			t.Fatal(err)
		}
		for m := next(t, ch); m != "STOPPING=1"; m = next(t, ch) {
			if m != "WATCHDOG=1" {
				t.Errorf("%s: %q before STOPPING=1", sock, m)
			}
		}
	}

	t.Setenv("WATCHDOG_PID", "1")
	if n := NewNotifier(); n.WatchdogInterval() != 0 {
		t.Error("a watchdog for another pid was taken")
	}
	t.Setenv("NOTIFY_SOCKET", "")
	n := NewNotifier()
	if n != nil || n.Ready() != nil || n.WatchdogInterval() != 0 {
		t.Error("without NOTIFY_SOCKET the notifier must do nothing")
	}
	n.Watchdog(context.Background(), nil) // returns at once
}
