package web

import "regexp"

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// MetricNames returns the names of every metric the hub's collector
// declares, whether or not a scrape has a series of it now.
func MetricNames() []string {
	var out []string
	for _, d := range allDescs {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}
