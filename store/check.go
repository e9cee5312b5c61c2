package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// sqliteHeader starts every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// CheckPath reports whether a writable Open of path can work, and changes
// nothing: no file or directory is created, no lock taken, nothing written
// (`vmreconcile config validate`). An existing file must be a writable
// SQLite database (an empty file is fine) with a writable directory (the
// WAL and lock files live beside it); a missing one needs its nearest
// existing parent to be a writable directory, as Open creates the rest.
// It returns the one-line reason, without the fix.
func CheckPath(path string) error {
	if path == "" {
		return errors.New("empty path")
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil:
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		if err := checkHeader(path); err != nil {
			return err
		}
		if err := writable(path); err != nil {
			return fmt.Errorf("%s is not writable: %s", path, why(err))
		}
		return dirWritable(filepath.Dir(path))
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return dirWritable(filepath.Dir(path))
	}
	return fmt.Errorf("%s: %s", path, why(err))
}

// dirWritable checks that dir, or its nearest existing parent (Open makes
// the missing ones), is a writable directory.
func dirWritable(dir string) error {
	for {
		fi, err := os.Stat(dir)
		if (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) && filepath.Dir(dir) != dir {
			dir = filepath.Dir(dir)
			continue
		}
		if err != nil {
			return fmt.Errorf("directory %s: %s", dir, why(err))
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		if err := writable(dir); err != nil {
			return fmt.Errorf("directory %s is not writable: %s", dir, why(err))
		}
		return nil
	}
}

func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s is not readable: %s", path, why(err))
	}
	defer f.Close()
	b := make([]byte, len(sqliteHeader))
	n, err := io.ReadFull(f, b)
	if n == 0 && (err == io.EOF || err == nil) {
		return nil // empty: Open makes it a store
	}
	if err != nil && err != io.ErrUnexpectedEOF || !bytes.Equal(b[:n], sqliteHeader) {
		return fmt.Errorf("%s is not a vmreconcile store (not an SQLite database)", path)
	}
	return nil
}

func why(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
