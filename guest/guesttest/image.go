package guesttest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	imageOnce sync.Once
	imageRef  string
	imageErr  error
)

// ImageName is the repository of the guest image in the private dockerd.
const ImageName = "vmreconcile-guest"

// SystemctlLog is the file the systemctl stand-in appends its argv to, one
// invocation a line.
const SystemctlLog = "/var/log/systemctl.log"

// SystemctlStateDir holds the stand-in's unit state: UNIT.enabled holds the
// is-enabled answer ("enabled", "disabled", "masked", ...; absent = unit not
// found) and UNIT.active the is-active answer ("active", "inactive", ...;
// absent = "inactive").
const SystemctlStateDir = "/etc/systemctl-stub"

// Image returns the reference of the guest image, building it on first use
// in the private dockerd (started if needed). The image holds busybox-static
// (with applet links), GNU tar and mktemp with the shared libraries ldd lists
// (vcsim runs `tar Ccf DIR - NAME` and `mktemp --tmpdir= ...`, which busybox
// rejects), a recording systemctl stand-in and an init that stops at once on
// SIGTERM.
func Image(t testing.TB) string {
	t.Helper()
	StartDockerd(t)
	ref, err := ensureImage()
	if err != nil {
		unavailable(t, err)
	}
	return ref
}

func ensureImage() (string, error) {
	d, err := ensureDaemon()
	if err != nil {
		return "", err
	}
	imageOnce.Do(func() {
		imageRef, imageErr = buildImage(d)
		if imageErr != nil {
			imageErr = fmt.Errorf("%w: building guest image: %v", ErrUnavailable, imageErr)
		}
	})
	return imageRef, imageErr
}

const systemctlStub = `#!/bin/sh
# systemctl stand-in for vmreconcile tests: records argv, answers from state files.
state=` + SystemctlStateDir + `
mkdir -p "$state" /var/log
printf '%s\n' "$*" >> ` + SystemctlLog + `
cmd=
units=
now=
for a in "$@"; do
	case "$a" in
	--now) now=1 ;;
	-*) ;;
	*)
		if [ -z "$cmd" ]; then cmd=$a; else
			case "$a" in *.*) ;; *) a=$a.service ;; esac
			units="$units $a"
		fi ;;
	esac
done
rc=0
for u in $units; do
	case "$cmd" in
	is-enabled)
		if [ -f "$state/$u.enabled" ]; then
			s=$(cat "$state/$u.enabled"); echo "$s"
			case "$s" in enabled|enabled-runtime|static|alias|indirect|generated) ;; *) rc=1 ;; esac
		else
			echo "Failed to get unit file state for $u: No such file or directory" >&2; rc=1
		fi ;;
	is-active)
		s=inactive; [ -f "$state/$u.active" ] && s=$(cat "$state/$u.active")
		echo "$s"; [ "$s" = active ] || rc=3 ;;
	enable) echo enabled > "$state/$u.enabled"; [ -n "$now" ] && echo active > "$state/$u.active" ;;
	disable) echo disabled > "$state/$u.enabled"; [ -n "$now" ] && echo inactive > "$state/$u.active" ;;
	mask) echo masked > "$state/$u.enabled"; [ -n "$now" ] && echo inactive > "$state/$u.active" ;;
	unmask) echo disabled > "$state/$u.enabled" ;;
	start|restart|reload) echo active > "$state/$u.active" ;;
	stop|kill) echo inactive > "$state/$u.active" ;;
	*) ;;
	esac
done
exit $rc
`

// guestInit is PID 1: exits at once on SIGTERM so that powering a VM off
// (docker stop) takes milliseconds, not docker's 10s SIGKILL timeout.
const guestInit = `#!/bin/sh
trap 'exit 0' TERM INT
sleep 2147483647 &
wait
`

type tarFile struct {
	mode    int64
	content []byte
	link    string // symlink target
	dir     bool
}

func buildImage(d *Daemon) (string, error) {
	files := map[string]tarFile{}
	addDir := func(p string, mode int64) { files[p] = tarFile{dir: true, mode: mode} }
	for _, p := range []string{"/bin", "/sbin", "/usr", "/usr/bin", "/usr/sbin", "/etc", "/root", "/var", "/var/lib", "/var/log", "/run", "/proc", "/sys", "/dev", SystemctlStateDir} {
		addDir(p, 0o755)
	}
	addDir("/tmp", 0o1777)
	addDir("/var/tmp", 0o1777)
	files["/etc/passwd"] = tarFile{mode: 0o644, content: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")}
	files["/etc/group"] = tarFile{mode: 0o644, content: []byte("root:x:0:\nnogroup:x:65534:\n")}
	files["/usr/bin/systemctl"] = tarFile{mode: 0o755, content: []byte(systemctlStub)}
	files["/sbin/guest-init"] = tarFile{mode: 0o755, content: []byte(guestInit)}

	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("busybox not on PATH (apt-get install busybox-static)")
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return "", fmt.Errorf("busybox --list: %v", err)
	}
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return "", err
	}
	files["/bin/busybox"] = tarFile{mode: 0o755, content: bin}
	gnu := map[string]string{"tar": "GNU tar", "mktemp": "coreutils"}
	for _, applet := range strings.Fields(string(list)) {
		if _, skip := gnu[applet]; skip || applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		files["/bin/"+applet] = tarFile{link: "busybox"}
	}
	binaries := []string{busybox}
	for name, want := range gnu {
		p, err := exec.LookPath(name)
		if err != nil {
			return "", fmt.Errorf("%s not on PATH (vcsim needs GNU %s in the guest)", name, name)
		}
		v, _ := exec.Command(p, "--version").Output()
		if !bytes.Contains(v, []byte(want)) {
			return "", fmt.Errorf("%s is not %s (vcsim needs the GNU options)", p, want)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		files["/usr/bin/"+name] = tarFile{mode: 0o755, content: b}
		binaries = append(binaries, p)
	}
	libs, err := sharedLibs(binaries)
	if err != nil {
		return "", err
	}
	for _, lib := range libs {
		b, err := os.ReadFile(lib) // follows symlinks: store the real bytes under the listed name
		if err != nil {
			return "", err
		}
		for dir := path.Dir(lib); dir != "/"; dir = path.Dir(dir) {
			if _, ok := files[dir]; !ok {
				addDir(dir, 0o755)
			}
		}
		files[lib] = tarFile{mode: 0o755, content: b}
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names) // parents before children
	now := time.Now()
	for _, n := range names {
		f := files[n]
		h := &tar.Header{Name: strings.TrimPrefix(n, "/"), Mode: f.mode, ModTime: now, Uname: "root", Gname: "root"}
		switch {
		case f.dir:
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		case f.link != "":
			h.Typeflag = tar.TypeSymlink
			h.Linkname = f.link
			h.Mode = 0o777
		default:
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.content))
		}
		if err := tw.WriteHeader(h); err != nil {
			return "", err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.content); err != nil {
				return "", err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	ref := ImageName + ":test"
	if _, err := d.docker(buf.Bytes(), "import",
		"--change", `CMD ["/sbin/guest-init"]`,
		"--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"-", ref); err != nil {
		return "", err
	}
	return ref, nil
}

// sharedLibs lists the shared objects (and the dynamic loader) the binaries
// need, as absolute paths, by parsing ldd output.
func sharedLibs(binaries []string) ([]string, error) {
	seen := map[string]bool{}
	for _, b := range binaries {
		out, err := exec.Command("ldd", b).CombinedOutput()
		if err != nil {
			if bytes.Contains(out, []byte("not a dynamic executable")) || bytes.Contains(out, []byte("statically linked")) {
				continue
			}
			return nil, fmt.Errorf("ldd %s: %v: %s", b, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			for i, w := range f {
				if w == "=>" && i+1 < len(f) && filepath.IsAbs(f[i+1]) {
					seen[f[i+1]] = true
				}
			}
			if len(f) > 0 && filepath.IsAbs(f[0]) { // the loader: "/lib64/ld-linux-x86-64.so.2 (0x...)"
				seen[f[0]] = true
			}
		}
	}
	libs := make([]string, 0, len(seen))
	for l := range seen {
		libs = append(libs, l)
	}
	sort.Strings(libs)
	return libs, nil
}
