package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"

	"github.com/golvs/golvs/packaging"
)

const (
	pkgName    = "golvs"
	maintainer = "golvs maintainers <golvs@users.noreply.github.com>"
	revision   = "1" // the Debian revision: the packaging is not upstream's
	versionPkg = "github.com/golvs/golvs/internal/version"
)

type options struct {
	outDir, version, commit string
	root                    string // module root; default: found with go env
}

// stamp is what the build is named after.
type stamp struct {
	version string // Debian upstream version, without the revision
	commit  string
	date    time.Time // commit time: every file's mtime, the changelog's date
}

// build writes the package and returns its path.
func build(o options) (string, error) {
	goBin := goTool()
	if o.root == "" {
		out, err := exec.Command(goBin, "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
			return "", fmt.Errorf("not inside the golvs module (go env GOMOD: %v)", err)
		}
		o.root = filepath.Dir(strings.TrimSpace(string(out)))
	}
	st, err := gitStamp(o.root)
	if err != nil {
		return "", err
	}
	if o.version != "" {
		st.version = o.version
	}
	if o.commit != "" {
		st.commit = o.commit
	}

	work, err := os.MkdirTemp("", "mkdeb")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	if err := buildBinaries(goBin, o.root, work, st); err != nil {
		return "", err
	}
	if err := writeSupport(work, st); err != nil {
		return "", err
	}
	info, err := packageInfo(o.root, work, st)
	if err != nil {
		return "", err
	}

	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(o.outDir, fmt.Sprintf("%s_%s-%s_%s.deb", pkgName, st.version, revision, info.Arch))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	p, err := nfpm.Get("deb")
	if err != nil {
		f.Close()
		return "", err
	}
	if err := p.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("nfpm: %w", err)
	}
	return path, f.Close()
}

// goTool is the go command: the one `go run`/`go test` put first in PATH
// (GOROOT/bin), else the PATH's.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// gitStamp names the build after the checkout: the newest vX.Y.Z tag
// (with +git<date>.<hash> after it), or 0.0~git<date>.<hash> before the
// first tag, so versions sort in commit order. A modified tree adds
// "+dirty".
func gitStamp(root string) (stamp, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", append([]string{"-C", root}, args...)...)
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	hash, err := git("rev-parse", "--short=12", "HEAD")
	if err != nil {
		return stamp{}, fmt.Errorf("git rev-parse (build from a git checkout, or give -version and -commit): %w", err)
	}
	ct, err := git("log", "-1", "--format=%ct")
	if err != nil {
		return stamp{}, err
	}
	secs, err := strconv.ParseInt(ct, 10, 64)
	if err != nil {
		return stamp{}, fmt.Errorf("commit time %q: %w", ct, err)
	}
	date := time.Unix(secs, 0).UTC()
	st := stamp{commit: hash, date: date}
	snap := fmt.Sprintf("git%s.%s", date.Format("20060102150405"), hash)

	tag, terr := git("describe", "--tags", "--abbrev=0", "--match", "v[0-9]*")
	switch {
	case terr != nil:
		st.version = "0.0~" + snap
	default:
		st.version = strings.TrimPrefix(tag, "v")
		if at, _ := git("describe", "--tags", "--exact-match", "--match", tag); at != tag {
			st.version += "+" + snap
		}
	}
	if dirty, _ := git("status", "--porcelain", "--untracked-files=no"); dirty != "" {
		st.version += "+dirty"
		st.commit += "+dirty"
	}
	return st, nil
}

// buildBinaries builds both commands static and stripped (as lintian
// wants), stamped with the version.
func buildBinaries(goBin, root, dir string, st stamp) error {
	ld := fmt.Sprintf("-s -w -X %s.Version=%s-%s -X %s.Commit=%s", versionPkg, st.version, revision, versionPkg, st.commit)
	cmd := exec.Command(goBin, "build", "-trimpath", "-buildvcs=false", "-ldflags", ld,
		"-o", dir+"/", "./cmd/director", "./cmd/realserver")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// writeSupport writes the files nfpm reads from disk: the maintainer
// scripts and the generated Debian changelog.
func writeSupport(dir string, st stamp) error {
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		b, err := fs.ReadFile(packaging.Files, "debian/"+s)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, s), b, 0o755); err != nil {
			return err
		}
	}
	// The Debian changelog names the packaged commit. gzip -9 without a
	// name or time in the header, as dh_compress does.
	entry := fmt.Sprintf("%s (%s-%s) unstable; urgency=medium\n\n  * Package of golvs commit %s.\n\n -- %s  %s\n",
		pkgName, st.version, revision, st.commit, maintainer, st.date.Format(time.RFC1123Z))
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	zw.Write([]byte(entry))
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "changelog.Debian.gz"), buf.Bytes(), 0o644)
}

func packageInfo(root, work string, st stamp) (*nfpm.Info, error) {
	mode := func(m os.FileMode) *files.ContentFileInfo {
		return &files.ContentFileInfo{Owner: "root", Group: "root", Mode: m, MTime: st.date}
	}
	embedded := func(name string) (string, error) {
		b, err := fs.ReadFile(packaging.Files, name)
		if err != nil {
			return "", err
		}
		p := filepath.Join(work, strings.ReplaceAll(name, "/", "_"))
		return p, os.WriteFile(p, b, 0o644)
	}
	doc := "/usr/share/doc/" + pkgName
	var contents files.Contents
	add := func(src, dst, typ string, m os.FileMode) {
		contents = append(contents, &files.Content{Source: src, Destination: dst, Type: typ, FileInfo: mode(m)})
	}
	add(filepath.Join(work, "director"), "/usr/sbin/director", "", 0o755)
	add(filepath.Join(work, "realserver"), "/usr/sbin/realserver", "", 0o755)
	for _, e := range []struct{ name, dst, typ string }{
		{"systemd/golvs-director.service", "/lib/systemd/system/golvs-director.service", ""},
		{"systemd/golvs-realserver.service", "/lib/systemd/system/golvs-realserver.service", ""},
		{"debian/topology.toml", "/etc/golvs/topology.toml", files.TypeConfig},
		{"debian/default", "/etc/default/golvs", files.TypeConfig},
		{"debian/copyright", doc + "/copyright", ""},
		{"debian/lintian-overrides", "/usr/share/lintian/overrides/" + pkgName, ""},
	} {
		src, err := embedded(e.name)
		if err != nil {
			return nil, err
		}
		add(src, e.dst, e.typ, 0o644)
	}
	add(filepath.Join(work, "changelog.Debian.gz"), doc+"/changelog.Debian.gz", "", 0o644)
	examples, err := filepath.Glob(filepath.Join(root, "examples", "*.toml"))
	if err != nil {
		return nil, err
	}
	for _, ex := range examples {
		add(ex, doc+"/examples/"+filepath.Base(ex), "", 0o644)
	}

	info := &nfpm.Info{
		Name:          pkgName,
		Arch:          "amd64",
		Platform:      "linux",
		Version:       st.version,
		VersionSchema: "none",
		Release:       revision,
		Section:       "net",
		Priority:      "optional",
		Maintainer:    maintainer,
		Homepage:      "https://github.com/golvs/golvs",
		Description: `Linux Virtual Server director and real server agent
golvs programs kernel IPVS from one TOML topology file, checks the real
servers' health, and holds the virtual IPs with VRRPv3 failover between
directors. The realserver agent prepares direct-routing and tunnel
backends. Both run as systemd services with readiness, synchronous
reload and a watchdog that restarts a director whose loops stop.`,
		MTime: st.date,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Suggests: []string{"ipvsadm"},
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(work, "postinst"),
				PreRemove:   filepath.Join(work, "prerm"),
				PostRemove:  filepath.Join(work, "postrm"),
			},
		},
	}
	info = nfpm.WithDefaults(info)
	if err := info.Validate(); err != nil {
		return nil, err
	}
	return info, nil
}
