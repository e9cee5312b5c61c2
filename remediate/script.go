package remediate

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/vmreconcile/vmreconcile/guest"
)

// disableScript is the guest script of disable-docker. It is idempotent: a
// unit already disabled and inactive is left alone, identity files already
// moved are not moved again (nothing is ever deleted), so a rerun after a
// crash does nothing twice. It reports on stdout, one "key=value" a line:
//
//	remediate=vmreconcile/1     first line
//	uid=0
//	docker_root=/var/lib/docker
//	before.UNIT=ENABLED/ACTIVE  for docker.service and docker.socket
//	swarm_leave=done|failed|skipped-inactive|skipped-no-cli|skipped-not-in-swarm  (forget only)
//	copied=SRC DST              (forget only: the identity copied before swarm leave)
//	disable=done UNIT...|already
//	moved=SRC DST               (forget only; one per file moved)
//	identity=moved|already|absent  (forget only)
//	backup=DIR                  (forget only, when there is one)
//	error=MSG                   on failure (exit code not 0)
//	end=ok                      last line
//
// It needs a POSIX sh, id, head, tr, sed, cp, mv, mkdir, ls and systemctl.
//
// With forget-identity, while the engine still runs and is in a swarm, it
// copies <data-root>/swarm into the backup and then runs
// 'docker swarm leave --force' (local only: the manager is not asked, the
// original keeps its node ID). Leave must come after the copy: dockerd's Leave
// deletes the contents of <data-root>/swarm (daemon/cluster
// clearPersistentState) and force-removes the swarm's task containers. What is
// left afterwards is moved into the backup as swarm.after-leave; nothing is
// ever deleted.
const disableScript = `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
forget=%d
stamp=%s
echo "remediate=vmreconcile/1"
uid=$(id -u 2>/dev/null)
echo "uid=$uid"
if [ "$uid" != 0 ]; then echo "error=guest user is not root (uid $uid): stopping Docker needs root"; exit 10; fi
root=/var/lib/docker
if [ -r /etc/docker/daemon.json ]; then
	r=$(head -c 65536 /etc/docker/daemon.json | tr -d '\n' | sed -n 's/.*"data-root"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' 2>/dev/null)
	case "$r" in /*) root=$r ;; esac
fi
echo "docker_root=$root"
if ! command -v systemctl >/dev/null 2>&1; then echo "error=systemctl not found: only systemd guests are supported"; exit 11; fi
st() { systemctl "$1" "$2" 2>/dev/null | head -n 1; }
b="$root/vmreconcile-backup-$stamp"
mkbackup() {
	if [ -d "$b" ]; then return 0; fi
	if ! mkdir -p "$b" || ! chmod 700 "$b"; then echo "error=cannot create $b"; exit 14; fi
}
if [ "$forget" = 1 ]; then
	if ! command -v docker >/dev/null 2>&1; then
		echo "swarm_leave=skipped-no-cli"
	elif [ "$(st is-active docker.service)" != active ]; then
		echo "swarm_leave=skipped-inactive"
	else
		case "$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" in
		active|pending|error|locked)
			if [ -e "$root/swarm" ] && [ ! -e "$b/swarm" ]; then
				mkbackup
				if ! cp -a "$root/swarm" "$b/swarm"; then echo "error=cannot copy $root/swarm to $b/swarm"; exit 14; fi
				echo "copied=$root/swarm $b/swarm"
			fi
			if docker swarm leave --force >/dev/null 2>&1; then echo "swarm_leave=done"; else echo "swarm_leave=failed"; fi
			;;
		*) echo "swarm_leave=skipped-not-in-swarm" ;;
		esac
	fi
fi
todo=
for u in docker.service docker.socket; do
	e=$(st is-enabled $u)
	a=$(st is-active $u)
	echo "before.$u=${e:-not-found}/${a:-unknown}"
	need=
	case "$e" in enabled*|linked*) need=1 ;; esac
	case "$a" in active|activating|reloading) need=1 ;; esac
	if [ -n "$need" ]; then todo="$todo $u"; fi
done
if [ -n "$todo" ]; then
	if systemctl disable --now $todo >/dev/null 2>&1; then
		echo "disable=done$todo"
	else
		echo "error=systemctl disable --now$todo failed"; exit 12
	fi
else
	echo "disable=already"
fi
for u in docker.service docker.socket; do
	case "$(st is-active $u)" in active|activating|reloading) echo "error=$u is still active after systemctl disable --now"; exit 13 ;; esac
	case "$(st is-enabled $u)" in enabled*|linked*) echo "error=$u is still enabled after systemctl disable --now"; exit 13 ;; esac
done
if [ "$forget" = 1 ]; then
	items=
	for i in swarm engine-id; do
		if [ -e "$root/$i" ] || [ -L "$root/$i" ]; then items="$items $i"; fi
	done
	prev=$(ls -d "$root"/vmreconcile-backup-* 2>/dev/null | tail -n 1)
	if [ -z "$items" ]; then
		if [ -n "$prev" ]; then echo "identity=already"; echo "backup=$prev"; else echo "identity=absent"; fi
	else
		mkbackup
		for i in $items; do
			d="$b/$i"
			# the identity was copied here before swarm leave: keep the rest beside it
			if [ "$i" = swarm ] && [ -e "$d" ]; then d="$b/swarm.after-leave"; fi
			if [ -e "$d" ]; then echo "error=$d already exists: not overwriting a backup"; exit 14; fi
			if ! mv "$root/$i" "$d"; then echo "error=cannot move $root/$i to $d"; exit 14; fi
			echo "moved=$root/$i $d"
		done
		echo "identity=moved"
		echo "backup=$b"
	fi
fi
echo "end=ok"
`

// kubeletBackupRoot is where disable-kubelet moves the kubelet credentials:
// outside /var/lib/kubelet and /etc/kubernetes, whose contents `kubeadm
// reset` deletes.
const kubeletBackupRoot = "/var/backups"

// disableKubeletScript is the guest script of disable-kubelet: `systemctl
// disable --now kubelet`, then the kubelet's credentials (/var/lib/kubelet/pki,
// /etc/kubernetes/kubelet.conf) are moved into
// /var/backups/vmreconcile-kubelet-STAMP (never deleted). It is idempotent
// like the disable-docker script and reports in the same format:
//
//	remediate=vmreconcile/1     first line
//	uid=0
//	agent=kubelet
//	before.kubelet.service=ENABLED/ACTIVE
//	disable=done kubelet|already
//	moved=SRC DST               one per item moved
//	identity=moved|already|absent
//	backup=DIR                  when there is one
//	error=MSG                   on failure (exit code not 0)
//	end=ok                      last line
//
// A kubelet process still running after the unit is stopped (one not run by
// kubelet.service: MKE runs its kubelet under Docker) is an error before
// anything is moved: a running kubelet keeps its certificate in memory and
// goes on writing the Node.
const disableKubeletScript = `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
stamp=%s
echo "remediate=vmreconcile/1"
uid=$(id -u 2>/dev/null)
echo "uid=$uid"
echo "agent=kubelet"
if [ "$uid" != 0 ]; then echo "error=guest user is not root (uid $uid): stopping kubelet needs root"; exit 10; fi
if ! command -v systemctl >/dev/null 2>&1; then echo "error=systemctl not found: only systemd guests are supported"; exit 11; fi
st() { systemctl "$1" "$2" 2>/dev/null | head -n 1; }
u=kubelet.service
e=$(st is-enabled $u)
a=$(st is-active $u)
echo "before.$u=${e:-not-found}/${a:-unknown}"
need=
case "$e" in enabled*|linked*) need=1 ;; esac
case "$a" in active|activating|reloading) need=1 ;; esac
if [ -n "$need" ]; then
	if systemctl disable --now kubelet >/dev/null 2>&1; then
		echo "disable=done kubelet"
	else
		echo "error=systemctl disable --now kubelet failed"; exit 12
	fi
else
	echo "disable=already"
fi
case "$(st is-active $u)" in active|activating|reloading) echo "error=$u is still active after systemctl disable --now"; exit 13 ;; esac
case "$(st is-enabled $u)" in enabled*|linked*) echo "error=$u is still enabled after systemctl disable --now"; exit 13 ;; esac
if command -v pidof >/dev/null 2>&1 && pidof kubelet >/dev/null 2>&1; then
	echo "error=a kubelet process still runs outside kubelet.service (MKE runs it under Docker: use disable-docker); nothing moved"; exit 13
fi
root=` + kubeletBackupRoot + `
b="$root/vmreconcile-kubelet-$stamp"
items=
for i in /var/lib/kubelet/pki /etc/kubernetes/kubelet.conf; do
	if [ -e "$i" ] || [ -L "$i" ]; then items="$items $i"; fi
done
prev=$(ls -d "$root"/vmreconcile-kubelet-* 2>/dev/null | tail -n 1)
if [ -z "$items" ]; then
	if [ -n "$prev" ]; then echo "identity=already"; echo "backup=$prev"; else echo "identity=absent"; fi
else
	if [ ! -d "$b" ]; then
		if ! mkdir -p "$root" || ! mkdir -m 700 "$b"; then echo "error=cannot create $b"; exit 14; fi
	fi
	for i in $items; do
		case "$i" in */pki) d="$b/kubelet-pki" ;; *) d="$b/kubelet.conf" ;; esac
		if [ -e "$d" ]; then echo "error=$d already exists: not overwriting a backup"; exit 14; fi
		if ! mv "$i" "$d"; then echo "error=cannot move $i to $d"; exit 14; fi
		echo "moved=$i $d"
	done
	echo "identity=moved"
	echo "backup=$b"
fi
echo "end=ok"
`

// kubeletScript returns the disable-kubelet guest script.
func kubeletScript(stamp string) string { return fmt.Sprintf(disableKubeletScript, stamp) }

// script returns the disable-docker guest script.
func script(forget bool, stamp string) string {
	f := 0
	if forget {
		f = 1
	}
	return fmt.Sprintf(disableScript, f, stamp)
}

// GuestReport is the parsed stdout of the disable-docker and
// disable-kubelet scripts.
type GuestReport struct {
	// Agent is what the script disables: "kubelet", or "" for Docker.
	Agent      string
	DockerRoot string
	Before     []string // "docker.service=enabled/active"
	Disabled   []string // units the script disabled; empty when already disabled
	Already    bool     // disable=already
	SwarmLeave string   // forget only
	Copied     []string // "SRC DST": copied into the backup before swarm leave
	Moved      []string // "SRC DST"
	Identity   string   // moved, already, absent (forget only)
	Backup     string
	Error      string
	Complete   bool // end=ok seen
}

// Changed reports whether the script changed anything in the guest.
func (r GuestReport) Changed() bool {
	return len(r.Disabled) > 0 || len(r.Moved) > 0 || len(r.Copied) > 0 || r.SwarmLeave == "done"
}

// ParseGuestReport parses the disable-docker or disable-kubelet script's stdout.
func ParseGuestReport(out []byte) (GuestReport, error) {
	var r GuestReport
	sc := bufio.NewScanner(bytes.NewReader(out))
	// A line may be as long as the whole output Run downloads: docker_root
	// and the backup paths come from the guest's daemon.json (up to 64 KiB).
	sc.Buffer(make([]byte, 0, 64<<10), guest.MaxOutput+1)
	first := true
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		if first {
			if k != "remediate" || v != "vmreconcile/1" {
				return r, fmt.Errorf("unexpected script output %q", firstLine(out))
			}
			first = false
			continue
		}
		switch {
		case k == "docker_root":
			r.DockerRoot = v
		case k == "agent":
			r.Agent = v
		case strings.HasPrefix(k, "before."):
			r.Before = append(r.Before, strings.TrimPrefix(k, "before.")+"="+v)
		case k == "disable":
			if v == "already" {
				r.Already = true
			} else {
				r.Disabled = strings.Fields(strings.TrimPrefix(v, "done"))
			}
		case k == "swarm_leave":
			r.SwarmLeave = v
		case k == "moved":
			r.Moved = append(r.Moved, v)
		case k == "copied":
			r.Copied = append(r.Copied, v)
		case k == "identity":
			r.Identity = v
		case k == "backup":
			r.Backup = v
		case k == "error":
			r.Error = v
		case k == "end" && v == "ok":
			r.Complete = true
		}
	}
	if err := sc.Err(); err != nil {
		return r, fmt.Errorf("script output unreadable: %v", err)
	}
	if first {
		return r, fmt.Errorf("no script output")
	}
	return r, nil
}

// Summary is a one-line account of what the script did.
func (r GuestReport) Summary() string {
	var parts []string
	switch {
	case len(r.Disabled) > 0:
		parts = append(parts, "systemctl disable --now "+strings.Join(r.Disabled, " "))
	case r.Already && r.Agent == "kubelet":
		parts = append(parts, "kubelet already disabled and inactive")
	case r.Already:
		parts = append(parts, "Docker already disabled and inactive (nothing to do)")
	}
	switch r.SwarmLeave {
	case "":
	case "done":
		if len(r.Copied) > 0 {
			parts = append(parts, "swarm state copied into the backup, then docker swarm leave --force (local)")
		} else {
			parts = append(parts, "docker swarm leave --force (local)")
		}
	case "skipped-inactive":
		parts = append(parts, "swarm leave skipped (engine not running)")
	case "skipped-no-cli":
		parts = append(parts, "swarm leave skipped (no docker CLI)")
	case "skipped-not-in-swarm":
		parts = append(parts, "swarm leave skipped (engine not in a swarm)")
	default:
		parts = append(parts, "swarm leave "+r.SwarmLeave)
	}
	switch r.Identity {
	case "moved":
		var names []string
		for _, m := range r.Moved {
			// "SRC DST": the data-root may hold spaces, the file name
			// (swarm, engine-id) does not: take it from the end.
			names = append(names, m[strings.LastIndex(m, "/")+1:])
		}
		parts = append(parts, "moved "+strings.Join(names, ", ")+" to "+r.Backup)
	case "already":
		parts = append(parts, "identity files already moved ("+r.Backup+")")
	case "absent":
		parts = append(parts, "no identity files to move")
	}
	if r.Error != "" {
		parts = append(parts, "error: "+r.Error)
	}
	return strings.Join(parts, "; ")
}

func firstLine(b []byte) string {
	s := string(b)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}
