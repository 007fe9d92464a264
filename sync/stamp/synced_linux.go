package stamp

import "golang.org/x/sys/unix"

// kernelSynced asks the kernel whether NTP keeps the clock synchronised:
// adjtimex reports TIME_ERROR (and STA_UNSYNC) otherwise. This is what
// timedatectl shows as "System clock synchronized".
func kernelSynced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	return err == nil && state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}
