package store

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestCheckPath: what a writable Open would meet, found without creating
// anything.
func TestCheckPath(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "a", "b", "state.db")
	if err := CheckPath(fresh); err != nil {
		t.Errorf("a new store under missing directories: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Errorf("CheckPath created %s: %v", filepath.Join(dir, "a"), err)
	}

	real := filepath.Join(dir, "state.db")
	st, err := Open(real, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := CheckPath(real); err != nil {
		t.Errorf("an existing store: %v", err)
	}
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	if err := CheckPath(empty); err != nil {
		t.Errorf("an empty file: %v", err)
	}

	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("not a database at all"), 0o600)
	for path, want := range map[string]string{
		text:                                 "notes.txt is not a vmreconcile store (not an SQLite database)",
		filepath.Join(text, "state.db"):      "notes.txt is not a directory",
		filepath.Join(text, "x", "state.db"): "notes.txt is not a directory",
		dir:                                  "is not a regular file",
		"":                                   "empty path",
	} {
		if err := CheckPath(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckPath(%q) = %v; want %q", path, err, want)
		}
	}

	// A directory this process may not write: a read-only file system (root
	// ignores permission bits), else a 0500 directory.
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o700)
	os.WriteFile(filepath.Join(ro, "state.db"), append([]byte{}, sqliteHeader...), 0o600)
	if os.Geteuid() == 0 {
		if err := syscall.Mount(ro, ro, "", syscall.MS_BIND, ""); err != nil {
			t.Skipf("cannot bind-mount: %v", err)
		}
		t.Cleanup(func() { syscall.Unmount(ro, syscall.MNT_DETACH) })
		if err := syscall.Mount("", ro, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
			t.Skipf("cannot remount read-only: %v", err)
		}
	} else {
		os.Chmod(ro, 0o500)
		t.Cleanup(func() { os.Chmod(ro, 0o700) })
	}
	for path, want := range map[string]string{
		filepath.Join(ro, "state.db"):        "state.db is not writable",
		filepath.Join(ro, "new", "state.db"): "directory " + ro + " is not writable",
	} {
		if err := CheckPath(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckPath(%q) = %v; want %q", path, err, want)
		}
	}
}
