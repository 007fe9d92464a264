// Package attack is the hostile-lobby suite of issue 12: black-box attack
// tests against the real totemhub binary (built once per run, started as a
// child process with its own configuration and state directory on a free
// loopback port), the real totemctl and totemd binaries, and a legitimate
// totem running the real outbox and uplink in the test process, whose
// operations must keep going through every attack with no error.
//
// The findings that concern the hub and the protocol rather than the
// embedded broker (foreign op ids, replays, malformed envelopes) also run
// with the hub on Debian's mosquitto (totemhub --broker, deploy/mosquitto's
// ACL).
//
// Every test is bounded in time and in count. `make attack` runs the suite
// with -attack.table and prints, for each attack, its outcome and the
// figures that show the margins: the hub's resident memory (VmHWM/VmRSS),
// its open descriptors, the legitimate operation's round-trip p99 during
// the attack and the hub log lines written during it. At the end the suite
// reads every log it collected (hub, totemd, the in-process totems,
// totemctl) for a codice fiscale, a name or a PIN.
package attack
