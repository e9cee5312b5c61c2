package swarm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// DefaultContextName is the docker CLI's built-in context: DOCKER_HOST, or
// the local socket. It has no entry in the context store.
const DefaultContextName = "default"

// DockerContext is the Docker endpoint of a docker CLI context, read from
// the CLI's context store as `docker --context NAME` would use it.
type DockerContext struct {
	Name string
	// Host is the endpoint, a DOCKER_HOST form; "" for the default context.
	Host string
	// TLSDir holds ca.pem, cert.pem and key.pem of the context (a
	// DOCKER_CERT_PATH-style directory), "" when the context has no TLS files.
	TLSDir string
	// SkipTLSVerify is the context's skip-tls-verify: the client certificate
	// is presented, the server's is not checked.
	SkipTLSVerify bool
}

// DockerConfigDir is the docker CLI's configuration directory: $DOCKER_CONFIG,
// else ~/.docker.
func DockerConfigDir() (string, error) {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("no home directory to find ~/.docker in (fix: set DOCKER_CONFIG to the docker CLI's configuration directory)")
	}
	return filepath.Join(home, ".docker"), nil
}

// CurrentContext returns the currentContext of dir/config.json: "" when the
// file does not exist or names none (the docker CLI then uses the default
// context).
func CurrentContext(dir string) (string, error) {
	name := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("docker CLI config %s: %s (fix: make it readable, or set DOCKER_CONFIG)", name, reason(err))
	}
	var cf struct {
		CurrentContext string `json:"currentContext"`
	}
	if err := json.Unmarshal(b, &cf); err != nil {
		return "", fmt.Errorf("docker CLI config %s: not valid JSON (fix: check it with `docker context ls`)", name)
	}
	return cf.CurrentContext, nil
}

// contextName is the docker CLI's rule for context names.
var contextName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$`)

// contextMeta is a context store's meta.json.
type contextMeta struct {
	Name      string `json:"Name"`
	Endpoints map[string]struct {
		Host          string `json:"Host"`
		SkipTLSVerify bool   `json:"SkipTLSVerify"`
	} `json:"Endpoints"`
}

// contextDir is the store's directory name for a context: the hex SHA-256
// of its name, as the docker CLI lays it out.
func contextDir(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// LoadContext reads context name from the docker CLI's context store under
// dir (dir/contexts/meta/<sha256>/meta.json, TLS files under
// dir/contexts/tls/<sha256>/docker/). The default context loads as a
// DockerContext with an empty Host. Errors are one line with the fix.
//
// vmreconcile dials tcp:// and unix:// endpoints with a full client bundle
// (ca.pem, cert.pem, key.pem) or no TLS at all; an ssh:// endpoint or a
// partial set of TLS files is refused with the fix.
func LoadContext(dir, name string) (DockerContext, error) {
	if name == DefaultContextName {
		return DockerContext{Name: name}, nil
	}
	if !contextName.MatchString(name) {
		return DockerContext{}, fmt.Errorf("docker context %q: not a valid context name (fix: a name from `docker context ls`)", name)
	}
	metaFile := filepath.Join(dir, "contexts", "meta", contextDir(name), "meta.json")
	b, err := os.ReadFile(metaFile)
	if errors.Is(err, fs.ErrNotExist) {
		return DockerContext{}, fmt.Errorf("docker context %q not found in %s (fix: `docker context ls` lists the contexts; DOCKER_CONFIG selects another configuration directory)", name, dir)
	}
	if err != nil {
		return DockerContext{}, fmt.Errorf("docker context %q: %s: %s (fix: make it readable by this user)", name, metaFile, reason(err))
	}
	var meta contextMeta
	if err := json.Unmarshal(b, &meta); err != nil || meta.Name != name {
		return DockerContext{}, fmt.Errorf("docker context %q: %s is not the context's metadata (fix: recreate it with `docker context create`)", name, metaFile)
	}
	ep, ok := meta.Endpoints["docker"]
	if !ok {
		return DockerContext{}, fmt.Errorf("docker context %q has no docker endpoint (fix: `docker context update %s --docker host=tcp://HOST:2376,...`)", name, name)
	}
	c := DockerContext{Name: name, Host: ep.Host, SkipTLSVerify: ep.SkipTLSVerify}
	if c.Host == "" {
		return c, nil
	}
	if strings.HasPrefix(strings.ToLower(c.Host), "ssh://") {
		return DockerContext{}, fmt.Errorf("docker context %q: its host %s is ssh://, which vmreconcile does not dial (fix: a context with a tcp:// endpoint and TLS, or an SSH tunnel: ssh -NL /tmp/mgr.sock:/var/run/docker.sock USER@HOST, then -H unix:///tmp/mgr.sock)",
			name, RedactHost(c.Host))
	}
	if err := ValidateHost(c.Host); err != nil {
		return DockerContext{}, fmt.Errorf("docker context %q: %s", name, err)
	}
	if c.TLSDir, err = contextTLS(dir, name, ep.SkipTLSVerify); err != nil {
		return DockerContext{}, err
	}
	return c, nil
}

// contextTLS returns the context's TLS directory when it holds a full client
// bundle, "" when it holds no TLS file.
func contextTLS(dir, name string, skipVerify bool) (string, error) {
	tlsDir := filepath.Join(dir, "contexts", "tls", contextDir(name), "docker")
	var have, missing []string
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		_, err := os.Stat(filepath.Join(tlsDir, f))
		switch {
		case err == nil:
			have = append(have, f)
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, f)
		default:
			return "", fmt.Errorf("docker context %q: %s: %s (fix: make the context's TLS files readable by this user)", name, filepath.Join(tlsDir, f), reason(err))
		}
	}
	switch {
	case len(missing) == 0:
		return tlsDir, nil
	case len(have) == 0 && !skipVerify:
		return "", nil // plain tcp://, as the docker CLI
	case len(have) == 0:
		return "", fmt.Errorf("docker context %q: skip-tls-verify without TLS files is not supported (fix: give the context ca, cert and key: `docker context update %s --docker host=...,ca=ca.pem,cert=cert.pem,key=key.pem`)", name, name)
	}
	return "", fmt.Errorf("docker context %q has %s but not %s; vmreconcile needs a whole client bundle (fix: `docker context update %s --docker host=...,ca=ca.pem,cert=cert.pem,key=key.pem`)",
		name, strings.Join(have, ", "), strings.Join(missing, ", "), name)
}

func reason(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
