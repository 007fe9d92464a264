package web

import (
	_ "embed"
	"net/http"
)

// htmx, vendored once from its npm package (static/README.md): the fleet
// page's live refresh, served from the hub itself (no CDN, CSP 'self').
//
//go:embed static/htmx.min.js
var htmxJS []byte

const htmxVersion = "2.0.11"

// htmxSHA256 is the vendored file's hash (TestHTMXVendored).
const htmxSHA256 = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"

func serveHTMX(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(htmxJS)
}
