package server

import (
	"net/http"
	"strings"

	"github.com/ragkv/ragkv/server/auth"
)

// WithAdminAuth makes the admin HTTP listener authenticate: /healthz and /readyz stay
// open (probes), /metrics needs any identity, everything else (the console, whose
// controls change policy and pins) an admin. Credentials: "Authorization: Bearer
// <token>", or HTTP Basic with the token as the password (so a browser can open the
// console; the user name is ignored).
func WithAdminAuth(st *auth.Store) Option {
	return optionFunc(func(o *options) { o.adminAuth = st })
}

// guardAdmin wraps the admin mux with WithAdminAuth's rules.
func guardAdmin(st *auth.Store, next http.Handler) http.Handler {
	if st == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz":
			next.ServeHTTP(w, r)
			return
		}
		tok := ""
		if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			tok = strings.TrimSpace(b)
		} else if _, pw, ok := r.BasicAuth(); ok {
			tok = pw
		}
		id, err := st.Token(tok)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="ragkv admin", charset="UTF-8"`)
			http.Error(w, "unauthenticated: send Authorization: Bearer <token> (or the token as the Basic password)", http.StatusUnauthorized)
			return
		}
		need := auth.Admin
		if r.URL.Path == "/metrics" {
			need = auth.Reader
		}
		if !id.Allows(need) {
			http.Error(w, "identity "+id.Name+" ("+id.Role.String()+") may not use "+r.URL.Path+" (needs "+need.String()+")", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), id)))
	})
}
