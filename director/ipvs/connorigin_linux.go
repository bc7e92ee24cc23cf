package ipvs

import (
	"fmt"
	"os"
)

// ReadConnOrigins counts the connections of this process's network
// namespace by origin. It walks the whole connection table: for status
// requests and scrapes, not for every pass.
func ReadConnOrigins() (ConnOrigins, error) {
	f, err := os.Open("/proc/net/ip_vs_conn_sync")
	if err != nil {
		return ConnOrigins{}, fmt.Errorf("ipvs connection origins: %w", err)
	}
	defer f.Close()
	return ParseConnOrigins(f)
}
