package main

import (
	goruntime "runtime"
	"runtime/debug"
	"strings"
)

// version is what --version prints: the module version (or "devel"), the VCS revision, time
// and dirty state the binary was built from when Go recorded them, and the Go version.
func version() string {
	info, _ := debug.ReadBuildInfo()
	return versionOf(info)
}

func versionOf(info *debug.BuildInfo) string {
	v := "devel"
	if info == nil {
		return v + ", " + goruntime.Version()
	}
	if mv := info.Main.Version; mv != "" && mv != "(devel)" {
		v = mv
	}
	var vcs []string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			vcs = append(vcs, "revision "+s.Value[:min(len(s.Value), 12)])
		case "vcs.time":
			vcs = append(vcs, s.Value)
		case "vcs.modified":
			if s.Value == "true" {
				vcs = append(vcs, "modified")
			}
		}
	}
	if len(vcs) > 0 {
		v += " (" + strings.Join(vcs, ", ") + ")"
	}
	goVer := info.GoVersion
	if goVer == "" {
		goVer = goruntime.Version()
	}
	return v + ", " + goVer
}
