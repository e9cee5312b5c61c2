package swarmtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const supported = true

// sysProcAttr puts dockerd in its own process group (so Stop can signal the
// group) and has the kernel SIGKILL it if the test process dies without
// running its cleanups (a panic or a -timeout kill): dockerd then takes its
// containerd with it through containerd's own Pdeathsig.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killUnder SIGKILLs every process whose command line names a path under dir
// (dockerd, containerd, shims) and waits for them to go. Matching on our own
// temporary directory rather than on process names guarantees that engines of
// other test processes, and the machine's own dockerd, are never touched.
func killUnder(dir string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := pidsUnder(dir)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("swarmtest: processes still running under %s: %v", dir, pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func pidsUnder(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	prefix := []byte(filepath.Clean(dir) + "/")
	var pids []int
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == self {
			continue
		}
		// A zombie's cmdline is empty, so reaped-but-unwaited processes
		// do not count as running.
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		if bytes.Contains(b, prefix) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountUnder lazily unmounts every mount point at or below dir, deepest
// first: dockerd bind-mounts its data root onto itself and leaves network
// namespace files mounted under exec-root when it is killed.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("swarmtest: read mountinfo: %w", err)
	}
	dir = filepath.Clean(dir)
	var points []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, mp := range points {
		// The same point can be mounted more than once; EINVAL means it
		// is already gone.
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("swarmtest: unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount decodes mountinfo's octal escapes (\040 for space, etc.).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				sb.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

// killGroup SIGKILLs the process group led by pid.
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

// killChildrenFirst SIGKILLs the processes under dir other than dockerd and
// waits up to a second for dockerd to reap them (their /proc entry vanishes).
func killChildrenFirst(dir string, dockerd int) {
	var pids []int
	for _, pid := range pidsUnder(dir) {
		if pid != dockerd {
			pids = append(pids, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	deadline := time.Now().Add(time.Second)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
