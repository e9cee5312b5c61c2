package daemon

import (
	"context"
	"net"
	"os"
	"strconv"
	"time"
)

// Notifier tells systemd how the service is doing, with the sd_notify
// protocol: datagrams such as "READY=1" on the unixgram socket systemd names
// in $NOTIFY_SOCKET (Type=notify), and "WATCHDOG=1" within $WATCHDOG_USEC
// (WatchdogSec=). Without $NOTIFY_SOCKET (not under systemd) every method
// does nothing. A nil *Notifier is valid and does nothing.
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration // WATCHDOG_USEC; 0 when the watchdog is off
}

// NewNotifier reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID (the
// watchdog is this process's only when the pid is absent or ours).
func NewNotifier() *Notifier {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" || (sock[0] != '/' && sock[0] != '@') {
		return nil
	}
	n := &Notifier{addr: &net.UnixAddr{Name: sock, Net: "unixgram"}} // "@name": Linux abstract namespace
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err == nil && usec > 0 {
		if pid := os.Getenv("WATCHDOG_PID"); pid == "" || pid == strconv.Itoa(os.Getpid()) {
			n.watchdog = time.Duration(usec) * time.Microsecond
		}
	}
	return n
}

// Notify sends one state datagram ("READY=1", "STATUS=...").
func (n *Notifier) Notify(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Write([]byte(state))
	return err
}

// Ready says start-up is done: the store is open and the HTTP server listens.
func (n *Notifier) Ready() error { return n.Notify("READY=1") }

// Stopping says a graceful stop has begun.
func (n *Notifier) Stopping() error { return n.Notify("STOPPING=1") }

// WatchdogInterval is how often Watchdog pings: half of $WATCHDOG_USEC, as
// sd_watchdog_enabled(3) advises; 0 when systemd set no watchdog.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog / 2
}

// Watchdog sends "WATCHDOG=1" every WatchdogInterval until ctx ends, each
// time alive returns (a deadlocked daemon blocks in alive and stops the
// pings, and systemd restarts it). It returns at once without a watchdog.
func (n *Notifier) Watchdog(ctx context.Context, alive func()) {
	every := n.WatchdogInterval()
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if alive != nil {
			alive()
		}
		_ = n.Notify("WATCHDOG=1")
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
