package vsphere

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/vmware/govmomi/simulator/esx"
)

// listedPackage is what `go list -json -export -deps` says of a package.
type listedPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Export     string
	Standard   bool
}

// production reports whether a package of this module ships in the binary
// (test doubles and simulators do not).
func production(path string) bool {
	const mod = "github.com/vmreconcile/vmreconcile"
	if !strings.HasPrefix(path, mod) {
		return false
	}
	for _, p := range []string{"/internal/", "/swarmtest", "/guesttest"} {
		if strings.Contains(path, p) {
			return false
		}
	}
	return true
}

// govmomiCalls type-checks the module's production packages (with the
// compiler's export data of their dependencies, from `go list -export`) and
// returns every govmomi function or method they call, as "pkg.Func" or
// "pkg.Type.Method" (object.VirtualMachine.PowerOff), with the files that
// call it.
func govmomiCalls(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "-export", "-deps", "github.com/vmreconcile/vmreconcile/...")
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	exports := map[string]string{}
	var ours []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		exports[p.ImportPath] = p.Export
		if production(p.ImportPath) {
			ours = append(ours, p)
		}
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		if exports[path] == "" {
			return nil, errors.New("no export data for " + path)
		}
		return os.Open(exports[path])
	})
	calls := map[string][]string{}
	for _, p := range ours {
		var files []*ast.File
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		info := &types.Info{Uses: map[*ast.Ident]types.Object{}, Selections: map[*ast.SelectorExpr]*types.Selection{}}
		if _, err := (&types.Config{Importer: imp}).Check(p.ImportPath, fset, files, info); err != nil {
			t.Fatalf("type-checking %s: %v", p.ImportPath, err)
		}
		for _, f := range files {
			rel, _ := filepath.Rel(root, fset.Position(f.Pos()).Filename)
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr)
				if !ok {
					return true
				}
				fn, ok := info.Uses[sel.Sel].(*types.Func)
				if !ok || fn.Pkg() == nil || !strings.HasPrefix(fn.Pkg().Path(), "github.com/vmware/govmomi") {
					return true
				}
				name := callName(fn)
				if !slices.Contains(calls[name], rel) {
					calls[name] = append(calls[name], rel)
				}
				return true
			})
		}
	}
	return calls
}

// callName is "object.VirtualMachine.PowerOff" for a method (of the type
// that declares it), "methods.RetrievePropertiesEx" for a function.
func callName(fn *types.Func) string {
	pkg := fn.Pkg().Name()
	sig := fn.Type().(*types.Signature)
	if sig.Recv() == nil {
		return pkg + "." + fn.Name()
	}
	rt := sig.Recv().Type()
	if p, ok := rt.(*types.Pointer); ok {
		rt = p.Elem()
	}
	if n, ok := rt.(*types.Named); ok {
		return pkg + "." + n.Obj().Name() + "." + fn.Name()
	}
	return pkg + "." + rt.String() + "." + fn.Name()
}

// local are the govmomi calls the code makes that send nothing to vSphere:
// constructors, fault and type helpers, URL and TLS set-up.
var local = map[string]string{
	"event.NewManager":                     "constructor",
	"find.NewFinder":                       "constructor",
	"guest.NewOperationsManager":           "constructor",
	"object.NewSearchIndex":                "constructor",
	"object.NewVirtualMachine":             "constructor",
	"property.DefaultCollector":            "constructor",
	"rest.NewClient":                       "constructor",
	"session.NewManager":                   "constructor",
	"soap.NewClient":                       "constructor",
	"tags.NewManager":                      "constructor",
	"view.NewManager":                      "constructor",
	"find.Finder.SetDatacenter":            "sets the finder's scope",
	"fault.In":                             "inspects an error",
	"fault.Is":                             "inspects an error",
	"soap.IsSoapFault":                     "inspects an error",
	"soap.IsVimFault":                      "inspects an error",
	"soap.ToSoapFault":                     "inspects an error",
	"soap.ToVimFault":                      "inspects an error",
	"soap.Fault.VimFault":                  "inspects an error",
	"soap.ParseURL":                        "parses a URL",
	"soap.Client.LoadThumbprints":          "reads a known-hosts file",
	"soap.Client.SetRootCAs":               "reads a CA file",
	"mo.Reference.Reference":               "returns a reference",
	"history.Collector.Reference":          "returns a reference",
	"property.Collector.Reference":         "returns a reference",
	"object.Common.Name":                   "returns a cached name",
	"object.Common.Reference":              "returns a reference",
	"object.Reference.Reference":           "returns a reference",
	"object.DatastorePath.FromString":      "parses a datastore path",
	"object.DatastorePath.String":          "formats a datastore path",
	"types.NewBool":                        "value helper",
	"types.NewInt32":                       "value helper",
	"types.BaseEvent.GetEvent":             "type accessor",
	"types.BaseOptionValue.GetOptionValue": "type accessor",
	"types.BaseVirtualDeviceFileBackingInfo.GetVirtualDeviceFileBackingInfo": "type accessor",
	"types.BaseVirtualEthernetCard.GetVirtualEthernetCard":                   "type accessor",
}

// privRow is a row of docs/privileges.md's table.
type privRow struct {
	call     string
	privs    []string
	neededBy string
}

var (
	backticked = regexp.MustCompile("`([^`]+)`")
	privName   = regexp.MustCompile(`^[A-Z][A-Za-z]*(\.[A-Za-z]+)+$`)
)

// readPrivilegesDoc parses docs/privileges.md: the table's rows, and each
// "## Role: NAME" section's bulleted privileges and govc role.create line.
func readPrivilegesDoc(t *testing.T) (rows []privRow, roles, govc map[string][]string) {
	t.Helper()
	b, err := os.ReadFile("../docs/privileges.md")
	if err != nil {
		t.Fatal(err)
	}
	roles, govc = map[string][]string{}, map[string][]string{}
	role := ""
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "## Role: "):
			role = strings.TrimPrefix(l, "## Role: ")
		case strings.HasPrefix(l, "## "):
			role = ""
		case role != "" && strings.HasPrefix(l, "- `"):
			roles[role] = append(roles[role], strings.Trim(strings.TrimPrefix(l, "- "), "`"))
		case role != "" && strings.HasPrefix(l, "govc role.create "):
			cmd := l
			for strings.HasSuffix(cmd, "\\") && i+1 < len(lines) {
				i++
				cmd = strings.TrimSuffix(cmd, "\\") + lines[i]
			}
			govc[role] = strings.Fields(cmd)[3:]
		case strings.HasPrefix(l, "| `"):
			cells := strings.Split(strings.Trim(l, "|"), "|")
			if len(cells) != 4 {
				t.Fatalf("table row with %d cells: %s", len(cells), l)
			}
			r := privRow{call: strings.Trim(strings.TrimSpace(cells[0]), "`"), neededBy: strings.TrimSpace(cells[3])}
			for _, m := range backticked.FindAllStringSubmatch(cells[2], -1) {
				r.privs = append(r.privs, m[1])
			}
			rows = append(rows, r)
		}
	}
	return rows, roles, govc
}

// validPrivileges are vSphere's privilege IDs (vcsim's Admin role holds
// them all).
func validPrivileges() map[string]bool {
	valid := map[string]bool{}
	for _, r := range esx.RoleList {
		for _, p := range r.Privilege {
			valid[p] = true
		}
	}
	return valid
}

// TestPrivilegesDoc checks docs/privileges.md against the code: every
// govmomi call the production code makes that reaches vSphere has a row
// (what it needs), no row names a call the code does not make, every
// privilege named is a vSphere privilege, and each role lists exactly the
// privileges of its rows (audit; verify = audit + verify rows; remediate =
// verify + remediate rows), as its govc command does.
func TestPrivilegesDoc(t *testing.T) {
	calls := govmomiCalls(t)
	rows, roles, govc := readPrivilegesDoc(t)
	if len(rows) < 20 {
		t.Fatalf("only %d rows parsed from docs/privileges.md", len(rows))
	}
	documented := map[string]bool{}
	for _, r := range rows {
		documented[r.call] = true
		if _, ok := calls[r.call]; !ok {
			t.Errorf("docs/privileges.md: row %s: the code no longer calls it (remove the row)", r.call)
		}
		if _, ok := local[r.call]; ok {
			t.Errorf("%s is both documented and listed as local", r.call)
		}
	}
	for name, files := range calls {
		_, isLocal := local[name]
		if !isLocal && !documented[name] {
			t.Errorf("%s (called in %s) has no row in docs/privileges.md: add the vSphere method and its privilege, or list it as local here", name, strings.Join(files, ", "))
		}
	}
	for name := range local {
		if _, ok := calls[name]; !ok {
			t.Errorf("local %s is not called any more (remove it)", name)
		}
	}

	valid := validPrivileges()
	order := []string{"audit", "verify", "remediate"}
	want := map[string]map[string]bool{}
	for _, r := range rows {
		at := slices.Index(order, r.neededBy)
		if at < 0 {
			t.Errorf("row %s: needed by %q, want one of %v", r.call, r.neededBy, order)
			continue
		}
		for _, p := range r.privs {
			if !valid[p] {
				t.Errorf("row %s: %q is not a vSphere privilege", r.call, p)
			}
			for _, role := range order[at:] {
				if want[role] == nil {
					want[role] = map[string]bool{}
				}
				want[role][p] = true
			}
		}
	}
	for _, role := range order {
		for what, got := range map[string][]string{"list": roles[role], "govc role.create": govc[role]} {
			set := map[string]bool{}
			for _, p := range got {
				set[p] = true
				if !privName.MatchString(p) || !valid[p] {
					t.Errorf("role %s %s: %q is not a vSphere privilege", role, what, p)
				}
			}
			if !maps.Equal(set, want[role]) {
				t.Errorf("role %s %s: %v; its rows need %v", role, what, sorted(set), sorted(want[role]))
			}
		}
	}
}

func sorted(m map[string]bool) []string {
	s := slices.Collect(maps.Keys(m))
	sort.Strings(s)
	return s
}
