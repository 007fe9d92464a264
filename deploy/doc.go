// Package deploy holds what installs Totem on a board and on a hub: the
// example configurations, the systemd units and the sysusers.d and
// tmpfiles.d snippets in systemd/, and the nfpm package definitions
// (make deb). Its tests check the units with systemd-analyze and the
// built packages with dpkg-deb; it has no code of its own.
package deploy
