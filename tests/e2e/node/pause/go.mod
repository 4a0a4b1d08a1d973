// The pod sandbox ("pause") program of the offline kind node image; stdlib only so it builds
// without the Go module proxy.
module restlake.io/kindnode/pause

go 1.22
