package guest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// ProbeOptions tunes Probe. The zero value is ready to use.
type ProbeOptions struct {
	// Timeout bounds the whole probe of one VM (default 2 minutes).
	Timeout time.Duration
	// Now stamps GuestIdentity.ProbedAt (default time.Now().UTC()).
	Now func() time.Time
}

// DefaultProbeTimeout is the per-VM timeout when none is given.
const DefaultProbeTimeout = 2 * time.Minute

// maxReport caps the probe report download; the script itself caps the
// certificate at 64 KiB (about 88 KiB as base64) and other values at 256 bytes.
const maxReport = 256 << 10

// probeScript prints "key=value" lines; see parseReport. It only needs a
// POSIX sh plus head, base64, tr, sed and ls (coreutils or busybox), and
// systemctl when present. It never fails on a missing file.
const probeScript = `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
umask 077
echo "probe=vmreconcile/1"
echo "uid=$(id -u 2>/dev/null)"
first() { head -c "$2" "$1" 2>/dev/null | head -n 1; }
# Docker's data-root, when daemon.json moves it.
root=/var/lib/docker
if [ -r /etc/docker/daemon.json ]; then
	r=$(head -c 65536 /etc/docker/daemon.json | tr -d '\n' | sed -n 's/.*"data-root"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' 2>/dev/null)
	case "$r" in /*) root=$r ;; esac
fi
echo "docker_root=$root"
cert="$root/swarm/certificates/swarm-node.crt"
blocked=
for d in "$root" "$root/swarm" "$root/swarm/certificates"; do
	if [ -d "$d" ] && [ ! -x "$d" ]; then blocked=$d; break; fi
done
if [ -n "$blocked" ]; then
	echo "cert=unreadable"
elif [ -f "$cert" ]; then
	if [ ! -r "$cert" ]; then
		echo "cert=unreadable"
	elif command -v base64 >/dev/null 2>&1; then
		printf 'cert.b64=%s\n' "$(head -c 65536 "$cert" | base64 | tr -d '\n')"
	else
		echo "cert.pem=begin"; head -c 65536 "$cert" | sed -n '/^-----BEGIN/,/^-----END/p'; echo "cert.pem=end"
	fi
elif [ -e "$cert" ]; then
	echo "cert=notfile"
else
	echo "cert=absent"
fi
if [ -e "$root/engine-id" ]; then
	if [ -r "$root/engine-id" ]; then echo "engine_id=$(first "$root/engine-id" 256)"; else echo "engine_id.unreadable=1"; fi
fi
if [ -e /etc/machine-id ]; then
	if [ -r /etc/machine-id ]; then echo "machine_id=$(first /etc/machine-id 256)"; else echo "machine_id.unreadable=1"; fi
fi
if [ -e /etc/docker/key.json ]; then echo key_json=yes; else echo key_json=no; fi
kconf=/etc/kubernetes/kubelet.conf
if [ -e "$kconf" ]; then
	if [ -r "$kconf" ]; then
		echo kubelet_conf=yes
		echo "kubelet_server=$(head -c 65536 "$kconf" | sed -n 's/^[[:space:]]*server:[[:space:]]*//p' | head -n 1 | tr -d "\"' " | head -c 256)"
		# only the certificate of an embedded client credential, never client-key-data
		echo "kubelet_conf_cert.b64=$(head -c 65536 "$kconf" | sed -n 's/^[[:space:]]*client-certificate-data:[[:space:]]*//p' | head -n 1 | tr -d "\"' " | head -c 16384)"
	else
		echo "kubelet_conf=unreadable"
	fi
else
	echo kubelet_conf=no
fi
if [ -n "$(ls -A /var/lib/kubelet/pki 2>/dev/null | head -n 1)" ]; then echo kubelet_pki=yes; else echo kubelet_pki=no; fi
# The kubelet client certificate file holds the certificate AND its private
# key: only CERTIFICATE blocks leave the guest, and nothing from a line
# naming a PRIVATE KEY onwards (should an END line be missing).
kc=/var/lib/kubelet/pki/kubelet-client-current.pem
kblocked=
for d in /var/lib/kubelet /var/lib/kubelet/pki; do
	if [ -d "$d" ] && [ ! -x "$d" ]; then kblocked=$d; break; fi
done
if [ -n "$kblocked" ]; then
	echo "kubelet_cert=unreadable"
elif [ -e "$kc" ]; then
	if [ ! -f "$kc" ]; then
		echo "kubelet_cert=notfile"
	elif [ ! -r "$kc" ]; then
		echo "kubelet_cert=unreadable"
	elif command -v base64 >/dev/null 2>&1; then
		printf 'kubelet_cert.b64=%s\n' "$(head -c 65536 "$kc" | sed -n '/^-----BEGIN CERTIFICATE-----/,/^-----END CERTIFICATE-----/p' | sed '/PRIVATE KEY/,$d' | base64 | tr -d '\n')"
	else
		echo "kubelet_cert.pem=begin"; head -c 65536 "$kc" | sed -n '/^-----BEGIN CERTIFICATE-----/,/^-----END CERTIFICATE-----/p' | sed '/PRIVATE KEY/,$d'; echo "kubelet_cert.pem=end"
	fi
else
	echo "kubelet_cert=absent"
fi
echo "hostname=$(uname -n 2>/dev/null | head -n 1 | head -c 256)"
if [ -n "$(ls /etc/ssh/ssh_host_*_key 2>/dev/null | head -n 1)" ]; then echo ssh_host_keys=yes; else echo ssh_host_keys=no; fi
ci=
if [ -r /var/lib/cloud/data/instance-id ]; then ci=$(first /var/lib/cloud/data/instance-id 256); fi
if [ -z "$ci" ] && [ -L /var/lib/cloud/instance ]; then ci=$(readlink /var/lib/cloud/instance 2>/dev/null | head -n 1 | sed 's|.*/||'); fi
if [ -z "$ci" ] && [ -d /var/lib/cloud/instance ]; then ci=unknown; fi
echo "cloud_init_instance=$ci"
if command -v systemctl >/dev/null 2>&1; then
	echo systemctl=yes
	for u in docker.service docker.socket kubelet.service; do
		echo "enabled.$u=$(systemctl is-enabled "$u" 2>/dev/null | head -n 1)"
		echo "active.$u=$(systemctl is-active "$u" 2>/dev/null | head -n 1)"
	done
else
	echo systemctl=no
fi
echo "end=ok"
`

// Probe reads the swarm and machine identity inside one VM through guest
// operations: swarm-node.crt (node ID = Subject CN, role = OU, cluster ID =
// O, NotAfter), the engine ID, whether /etc/docker/key.json exists,
// /etc/machine-id, docker.service/docker.socket state, kubelet
// credentials, the host name, whether SSH host keys exist and cloud-init's
// instance state. It runs one guest script (see Run) and parses its report.
//
// It never returns an error: failures (VM off, tools not running, invalid
// login, unreadable files, timeouts) become GuestIdentity.Error, a one-line
// reason that never contains the password; the other fields are then empty.
// A VM without swarm-node.crt has an empty NodeID and no Error.
//
// vm.Ref must be a VM of the vCenter or ESX host c is connected to.
func Probe(ctx context.Context, c *vim25.Client, vm reconcile.VM, auth types.BaseGuestAuthentication, opts ProbeOptions) reconcile.GuestIdentity {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	fail := func(reason string) reconcile.GuestIdentity {
		return reconcile.GuestIdentity{VMRef: vm.Ref, VCenter: vm.VCenter, ProbedAt: now().UTC(), Error: scrub(reason, auth)}
	}
	if vm.Ref == "" {
		return fail("VM has no managed object reference")
	}
	if vm.Template {
		return fail("VM is a template (guest operations need a running VM)")
	}
	if auth == nil {
		return fail("no guest credentials for this VM")
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ref := types.ManagedObjectReference{Type: "VirtualMachine", Value: vm.Ref}

	var props mo.VirtualMachine
	err := property.DefaultCollector(c).RetrieveOne(ctx, ref, []string{"runtime.powerState", "guest.toolsRunningStatus", "guest.guestFamily"}, &props)
	if err != nil {
		return fail(Describe(err))
	}
	if ps := props.Runtime.PowerState; ps != types.VirtualMachinePowerStatePoweredOn {
		return fail("VM is " + humanPower(string(ps)))
	}
	if g := props.Guest; g != nil {
		if g.ToolsRunningStatus == string(types.VirtualMachineToolsRunningStatusGuestToolsNotRunning) {
			return fail("VMware Tools not running")
		}
		if g.GuestFamily == string(types.VirtualMachineGuestOsFamilyWindowsGuest) {
			return fail("Windows guest (only Linux guests can run docker swarm nodes probed here)")
		}
	}

	code, stdout, stderr, err := run(ctx, c, ref, auth, probeScript, maxReport, 4<<10)
	if err != nil {
		return fail(Describe(err))
	}
	if code != 0 {
		msg := fmt.Sprintf("probe script exited %d", code)
		if line := firstLine(stderr); line != "" {
			msg += ": " + line
		}
		return fail(msg)
	}
	id, reason := parseReport(stdout)
	if reason != "" {
		return fail(reason)
	}
	id.VMRef = vm.Ref
	id.VCenter = vm.VCenter
	id.ProbedAt = now().UTC()
	return id
}

// ProbeAll probes vms with at most concurrency probes at a time (values
// below 1 mean 1). The result has one GuestIdentity per VM, in the order of
// vms. authFor returns the credentials of a VM (nil: not probed, the
// identity says so); perVMTimeout bounds each probe (0: DefaultProbeTimeout).
func ProbeAll(ctx context.Context, c *vim25.Client, vms []reconcile.VM, authFor func(reconcile.VM) types.BaseGuestAuthentication, concurrency int, perVMTimeout time.Duration) []reconcile.GuestIdentity {
	if concurrency < 1 {
		concurrency = 1
	}
	out := make([]reconcile.GuestIdentity, len(vms))
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, vm := range vms {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var auth types.BaseGuestAuthentication
			if authFor != nil {
				auth = authFor(vm)
			}
			out[i] = Probe(ctx, c, vm, auth, ProbeOptions{Timeout: perVMTimeout})
		}()
	}
	wg.Wait()
	return out
}

// report is the probe script's output: its key=value lines and its PEM
// sections ("NAME.pem=begin" ... "NAME.pem=end", printed when the guest has
// no base64).
type report struct {
	kv       map[string]string
	sections map[string][]string
}

// scanReport splits the probe script's output; a reason when it cannot be
// trusted.
func scanReport(b []byte) (report, string) {
	r := report{kv: map[string]string{}, sections: map[string][]string{}}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxReport)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if section != "" {
			if line == section+".pem=end" {
				section = ""
				continue
			}
			r.sections[section] = append(r.sections[section], line)
			continue
		}
		if name, ok := strings.CutSuffix(line, ".pem=begin"); ok && (name == "cert" || name == "kubelet_cert") {
			if _, dup := r.sections[name]; dup {
				return r, "probe report malformed: section " + name + " repeated"
			}
			section = name
			r.sections[name] = []string{}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			// Every key is printed once. A second one means a value read
			// from a guest file spilled onto a line of its own (a newline
			// in a symlink target, a host name...): such a line could
			// rewrite an earlier one (cert=absent after cert.b64=), so the
			// report cannot be trusted.
			if _, dup := r.kv[k]; dup {
				return r, "probe report malformed: key " + cleanValue(k) + " repeated"
			}
			r.kv[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return r, "probe report unreadable: " + sanitizeLine(err.Error())
	}
	if r.kv["probe"] != "vmreconcile/1" {
		return r, "probe report missing (guest shell did not run the probe)"
	}
	if r.kv["end"] != "ok" {
		return r, "probe report truncated"
	}
	return r, ""
}

// certBytes returns the certificate bytes of one certificate status of the
// report (NAME.b64 or a NAME PEM section); ok is false when there are none.
// label names the file in reasons.
func (r report) certBytes(name, label string) (raw []byte, ok bool, reason string) {
	b64, isB64 := r.kv[name+".b64"]
	lines, isPEM := r.sections[name]
	if r.kv[name] != "" && (isB64 || isPEM) || isB64 && isPEM {
		return nil, false, "probe report malformed: two " + label + " statuses"
	}
	switch {
	case isB64:
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			return nil, false, label + ": bad base64 from guest"
		}
		return b, true, ""
	case isPEM:
		return []byte(strings.Join(lines, "\n") + "\n"), true, ""
	}
	return nil, false, ""
}

// parseReport turns the probe script's output into an identity, or a reason
// when the report shows the identity cannot be trusted.
func parseReport(out []byte) (reconcile.GuestIdentity, string) {
	var id reconcile.GuestIdentity
	r, reason := scanReport(out)
	if reason != "" {
		return id, reason
	}
	kv := r.kv
	if reason := r.swarmCert(&id); reason != "" {
		return id, reason
	}
	if kv["engine_id.unreadable"] != "" {
		return id, "engine-id not readable by the guest user (uid " + cleanValue(kv["uid"]) + "; use root)"
	}
	if kv["machine_id.unreadable"] != "" {
		return id, "/etc/machine-id not readable by the guest user"
	}
	if reason := r.kubelet(&id); reason != "" {
		return id, reason
	}
	id.EngineID = cleanValue(kv["engine_id"])
	id.MachineID = cleanValue(kv["machine_id"])
	id.KeyJSON = kv["key_json"] == "yes"
	id.Hostname = cleanValue(kv["hostname"])
	id.SSHHostKeys = kv["ssh_host_keys"] == "yes"
	id.CloudInitInstance = cleanValue(kv["cloud_init_instance"])
	if kv["systemctl"] == "yes" {
		id.DockerEnabled = enabledState(cleanValue(kv["enabled.docker.service"]), cleanValue(kv["enabled.docker.socket"]))
		id.DockerActive = activeState(cleanValue(kv["active.docker.service"]))
		id.KubeletEnabled = enabledState(cleanValue(kv["enabled.kubelet.service"]), "")
		id.KubeletActive = activeState(cleanValue(kv["active.kubelet.service"]))
	} else {
		id.DockerEnabled, id.DockerActive = "unknown", "unknown"
		id.KubeletEnabled, id.KubeletActive = "unknown", "unknown"
	}
	return id, ""
}

// swarmCert reads swarm-node.crt: node ID (CN), role (OU), cluster ID (O).
func (r report) swarmCert(id *reconcile.GuestIdentity) string {
	raw, ok, reason := r.certBytes("cert", "swarm-node.crt")
	if reason != "" {
		return reason
	}
	switch {
	case r.kv["cert"] == "unreadable":
		return "swarm-node.crt not readable by the guest user (uid " + cleanValue(r.kv["uid"]) + "; use root)"
	case r.kv["cert"] == "notfile":
		return "swarm-node.crt is not a regular file"
	case r.kv["cert"] == "absent":
		return "" // no swarm identity: not an error
	case !ok:
		return "probe report has no swarm-node.crt status"
	}
	cert, err := parseNodeCert(raw)
	if err != nil {
		return "swarm-node.crt: " + err.Error()
	}
	if cert.Subject.CommonName == "" {
		// Not a node identity (and not "no identity" either): say so.
		return "swarm-node.crt: no node ID (empty CN)"
	}
	id.NodeID = cert.Subject.CommonName
	if ou := cert.Subject.OrganizationalUnit; len(ou) > 0 {
		id.Role = ou[0]
	}
	if o := cert.Subject.Organization; len(o) > 0 {
		id.ClusterID = o[0]
	}
	id.CertNotAfter = cert.NotAfter.UTC()
	return ""
}

// kubeletNodePrefix starts the CN of a kubelet client certificate.
const kubeletNodePrefix = "system:node:"

// kubelet reads the kubelet identity: the client certificate
// (/var/lib/kubelet/pki/kubelet-client-current.pem, else the
// client-certificate-data of /etc/kubernetes/kubelet.conf): its CN
// "system:node:NAME" gives the Node name, its O the group; and the API
// server of kubelet.conf. Unreadable files are a reason (a probe that
// cannot read them cannot say the VM has no kubelet identity); a file that
// holds no parsable certificate leaves KubeletNode empty with KubeletCreds
// set.
func (r report) kubelet(id *reconcile.GuestIdentity) string {
	kv := r.kv
	uid := " by the guest user (uid " + cleanValue(kv["uid"]) + "; use root)"
	if kv["kubelet_conf"] == "unreadable" {
		return "/etc/kubernetes/kubelet.conf not readable" + uid
	}
	raw, ok, reason := r.certBytes("kubelet_cert", "kubelet client certificate")
	if reason != "" {
		return reason
	}
	switch kv["kubelet_cert"] {
	case "unreadable":
		return "kubelet client certificate (/var/lib/kubelet/pki) not readable" + uid
	case "notfile":
		return "/var/lib/kubelet/pki/kubelet-client-current.pem is not a regular file"
	case "absent":
		if v := strings.TrimSpace(kv["kubelet_conf_cert.b64"]); v != "" {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return "kubelet.conf: client-certificate-data is not base64"
			}
			raw, ok = b, true
		}
	case "":
		if !ok {
			return "probe report has no kubelet certificate status"
		}
	}
	if ok {
		if cert, err := parseNodeCert(raw); err == nil {
			if n, found := strings.CutPrefix(cert.Subject.CommonName, kubeletNodePrefix); found {
				id.KubeletNode = cleanValue(n)
			}
			if o := cert.Subject.Organization; len(o) > 0 {
				id.KubeletOrg = cleanValue(o[0])
			}
		}
	}
	id.KubeletServer = cleanValue(kv["kubelet_server"])
	id.KubeletCreds = kv["kubelet_conf"] == "yes" || kv["kubelet_pki"] == "yes" || ok
	return ""
}

// parseNodeCert returns the node (leaf) certificate of swarm-node.crt, which
// holds the node certificate followed by the issuing CA chain.
func parseNodeCert(raw []byte) (*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := raw
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, errors.New("cannot parse certificate")
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		if c, err := x509.ParseCertificate(raw); err == nil { // DER, just in case
			certs = append(certs, c)
		} else {
			return nil, errors.New("no PEM certificate in file")
		}
	}
	for _, c := range certs {
		if !c.IsCA {
			return c, nil
		}
	}
	return certs[0], nil
}

// enabledState maps systemctl is-enabled answers for docker.service and
// docker.socket to "yes" (docker starts at boot or on first socket use),
// "no" or "unknown" (no answer, e.g. systemd not running).
func enabledState(service, socket string) string {
	yes := func(s string) bool {
		switch s {
		case "enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "linked", "linked-runtime", "transient":
			return true
		}
		return false
	}
	no := func(s string) bool {
		switch s {
		case "disabled", "masked", "masked-runtime", "not-found", "bad":
			return true
		}
		return false
	}
	if service == "masked" || service == "masked-runtime" {
		return "no" // the socket cannot start a masked service
	}
	if yes(service) || yes(socket) {
		return "yes"
	}
	if no(service) && (no(socket) || socket == "") {
		return "no"
	}
	return "unknown"
}

// activeState maps systemctl is-active for docker.service.
func activeState(service string) string {
	switch service {
	case "active", "activating", "reloading", "refreshing":
		return "yes"
	case "inactive", "failed", "deactivating", "maintenance":
		return "no"
	}
	return "unknown"
}

// cleanValue keeps a guest-supplied value short and printable.
func cleanValue(s string) string {
	s = strings.TrimSpace(s)
	var b strings.Builder
	for _, r := range s {
		if r > 0x20 && r < 0x7f {
			b.WriteRune(r)
		}
		if b.Len() >= 128 {
			break
		}
	}
	return b.String()
}

func firstLine(b []byte) string {
	s := string(b)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return sanitizeLine(s)
}

// scrub removes the password from a reason, in case a guest or server ever
// echoes it (vSphere faults do not).
func scrub(reason string, auth types.BaseGuestAuthentication) string {
	if a, ok := auth.(*types.NamePasswordAuthentication); ok && len(a.Password) >= 3 {
		reason = strings.ReplaceAll(reason, a.Password, "***")
	}
	return reason
}
