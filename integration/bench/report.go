package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Ratio is a/b, 0 when b is 0.
func Ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Table prints the results, one row per size; times are of this one
// kernel (under emulation in the lab), so read the ratios.
func Table(w io.Writer, rs []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "services\tVIPs\tipvsadm -R\tkeepalived\tdirector cold\t/keepalived\t/ipvsadm\tchange\t(writes)\t/cold\tunchanged writes\tno-op resync\t/cold\tfull-dump pass\t/cold\tRSS KiB (ours/ka/ipvsadm)\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%d x %d\t%d\t%s\t%s\t%s\t%.2fx\t%.2fx\t%s\t%d\t%.2f%%\t%v\t%s\t%.1f%%\t%s\t%.1f%%\t%d/%d/%d\t\n",
			r.Services, r.Backends, len(r.table().vips()),
			round(r.IpvsadmRestore), round(r.KeepalivedCold), round(r.Cold),
			Ratio(r.Cold, r.KeepalivedCold), Ratio(r.Cold, r.IpvsadmRestore),
			round(r.Change), r.ChangeWrites, 100*Ratio(r.Change, r.Cold),
			r.Unchanged, round(r.NoopPass), 100*Ratio(r.NoopPass, r.Cold),
			round(r.NoopFullPass), 100*Ratio(r.NoopFullPass, r.Cold),
			r.RSSKB, r.KeepalivedRSSKB, r.IpvsadmRSSKB)
	}
	tw.Flush()
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(100 * time.Microsecond)
}

// WriteRaw writes one JSON object per size, durations in nanoseconds.
func WriteRaw(w io.Writer, rs []Result) error {
	enc := json.NewEncoder(w)
	for _, r := range rs {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// Verdicts checks issue 7's targets against one run's results: one line
// each, "ok" or "MISS".
func Verdicts(rs []Result) []string {
	var out []string
	line := func(ok bool, format string, args ...any) {
		v := "ok  "
		if !ok {
			v = "MISS"
		}
		out = append(out, v+" "+fmt.Sprintf(format, args...))
	}
	for _, r := range rs {
		n := r.Services
		zero := len(r.Unchanged) > 0
		for _, w := range r.Unchanged {
			zero = zero && w == 0
		}
		line(zero, "%d: unchanged reload writes %v (want 0)", n, r.Unchanged)
		line(r.ChangeWrites == 1, "%d: one-backend change writes %d (want 1)", n, r.ChangeWrites)
		if n >= 1000 {
			line(Ratio(r.Cold, r.KeepalivedCold) <= 1.0, "%d: cold %.2fx keepalived (want <= 1.0x)", n, Ratio(r.Cold, r.KeepalivedCold))
		}
		if n == 1000 {
			line(Ratio(r.Change, r.Cold) < 0.01, "%d: change %.2f%% of cold (want < 1%%)", n, 100*Ratio(r.Change, r.Cold))
		}
		if n >= 5000 {
			line(Ratio(r.NoopPass, r.Cold) < 0.10, "%d: no-op resync pass %.1f%% of cold (want < 10%%)", n, 100*Ratio(r.NoopPass, r.Cold))
		}
	}
	return out
}
