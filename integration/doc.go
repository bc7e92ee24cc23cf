// Package integration holds golvs's end-to-end tests. They are built with
// `-tags lab` and run as root inside the real-kernel lab (integration/lab),
// normally through `go run ./integration/cmd/lab test`; see README.md.
package integration
