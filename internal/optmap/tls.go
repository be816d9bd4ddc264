package optmap

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strings"
)

// TLS holds Kombu's TLS keys as read by [Reader.TLS]: the ssl_* keys of
// redis-py (and py-amqp's ssl dict, whose keys lack the prefix).
type TLS struct {
	// On reports that TLS was asked for: ssl=true, an ssl dict, or any
	// ssl_* key.
	On bool
	// CertReqs is "none", "optional" or "required" (from CERT_NONE, 0,
	// ...), or "" when not given.
	CertReqs string
	// CACerts, CertFile and KeyFile are PEM file paths (ssl_ca_certs,
	// ssl_certfile, ssl_keyfile).
	CACerts, CertFile, KeyFile string
	// ServerHostname is the name to verify and send as SNI
	// (ssl_server_hostname), or "".
	ServerHostname string
	// CheckHostname is ssl_check_hostname; CheckHostnameSet says it was
	// given.
	CheckHostname, CheckHostnameSet bool
}

// tlsKeys are the TLS keys, without their "ssl_" prefix.
var tlsKeys = []string{"cert_reqs", "ca_certs", "certfile", "keyfile", "server_hostname", "check_hostname"}

// TLS reads the keys ssl (a bool, or a dict of the keys below with or
// without their "ssl_" prefix), ssl_cert_reqs, ssl_ca_certs, ssl_certfile,
// ssl_keyfile, ssl_server_hostname and ssl_check_hostname. A top-level
// ssl_* key wins over the same key in the ssl dict; an unknown key in the
// dict is an error like an unknown option.
func (r *Reader) TLS() TLS {
	var t TLS
	for _, k := range tlsKeys {
		if r.Has("ssl_" + k) {
			t.On = true
		}
	}
	// The ssl dict, read by a reader of its own so that its unknown keys
	// are reported; top-level keys are applied after it and win.
	if v, ok := r.Lookup("ssl"); ok {
		if b, err := AsBool(v); err == nil {
			t.On = t.On || b
		} else if m, err := AsMap(v); err == nil {
			t.On = true
			d := New(r.owner, m)
			for _, k := range tlsKeys {
				d.readTLSKey(k, k, &t)
				d.readTLSKey("ssl_"+k, k, &t)
			}
			if err := d.Err(); err != nil && r.err == nil {
				r.err = err
			}
		} else {
			r.Fail("ssl", v, "want a bool or a dict of ssl_* keys")
		}
	}
	for _, k := range tlsKeys {
		r.readTLSKey("ssl_"+k, k, &t)
	}
	return t
}

// readTLSKey reads key (named name without its prefix) into t.
func (r *Reader) readTLSKey(key, name string, t *TLS) {
	switch name {
	case "cert_reqs":
		v, ok := r.Lookup(key)
		if !ok {
			return
		}
		s, err := certReqs(v)
		if err != nil {
			r.Fail(key, v, "want CERT_REQUIRED, CERT_OPTIONAL or CERT_NONE")
			return
		}
		t.CertReqs = s
	case "ca_certs":
		r.String(key, &t.CACerts)
	case "certfile":
		r.String(key, &t.CertFile)
	case "keyfile":
		r.String(key, &t.KeyFile)
	case "server_hostname":
		r.String(key, &t.ServerHostname)
	case "check_hostname":
		if r.Bool(key, &t.CheckHostname) {
			t.CheckHostnameSet = true
		}
	}
}

// certReqs maps Python's ssl.CERT_* (a name, with or without the prefix,
// or its number) to "none", "optional" or "required".
func certReqs(v any) (string, error) {
	if s, ok := v.(string); ok {
		switch strings.ToLower(strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "CERT_")) {
		case "none", "0":
			return "none", nil
		case "optional", "1":
			return "optional", nil
		case "required", "2":
			return "required", nil
		}
		return "", errors.New("bad cert_reqs")
	}
	f, err := AsFloat(v)
	if err != nil {
		return "", err
	}
	switch f {
	case 0:
		return "none", nil
	case 1:
		return "optional", nil
	case 2:
		return "required", nil
	}
	return "", errors.New("bad cert_reqs")
}

// Config builds a tls.Config from t for the server serverName (used for
// SNI and name checks unless ServerHostname is set). verify and
// checkHostname are the defaults when CertReqs and CheckHostname are not
// given: redis-py verifies the chain but not the host name; py-amqp does
// both. Verifying the chain without the name is done by a
// VerifyConnection hook, as crypto/tls has no such mode. Files that cannot
// be read are *transport.OptionError naming their key.
func (t TLS) Config(owner, serverName string, verify, checkHostname bool) (*tls.Config, error) {
	c := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if err := t.Apply(owner, c, verify, checkHostname); err != nil {
		return nil, err
	}
	return c, nil
}

// Apply adjusts c, a configuration of the caller's (a clone of the user's,
// say), by t: the SNI name, the CA file, the client certificate (which
// replaces any in c) and the verification mode. verify and checkHostname
// are the defaults when CertReqs and CheckHostname are not given; a c that
// already skips verification is left so. This is the one place that reads
// Kombu's TLS files, for every transport and for messaging's URLs.
func (t TLS) Apply(owner string, c *tls.Config, verify, checkHostname bool) error {
	if t.ServerHostname != "" {
		c.ServerName = t.ServerHostname
	}
	switch t.CertReqs {
	case "none":
		verify = false
	case "optional", "required":
		verify = true
	}
	if t.CheckHostnameSet {
		checkHostname = t.CheckHostname
	}
	r := New(owner, nil)
	if t.CACerts != "" {
		pem, err := os.ReadFile(t.CACerts)
		if err != nil {
			return r.Fail("ssl_ca_certs", t.CACerts, err.Error())
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return r.Fail("ssl_ca_certs", t.CACerts, "no PEM certificate in the file")
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		key := t.KeyFile
		if key == "" {
			key = t.CertFile // Python's load_cert_chain: the key may sit in the cert file
		}
		pair, err := tls.LoadX509KeyPair(t.CertFile, key)
		if err != nil {
			return r.Fail("ssl_certfile", t.CertFile, err.Error())
		}
		c.Certificates = []tls.Certificate{pair}
	}
	switch {
	case c.InsecureSkipVerify:
		// The caller's own choice.
	case !verify:
		c.InsecureSkipVerify = true
	case !checkHostname:
		c.InsecureSkipVerify = true
		c.VerifyConnection = verifyChain(c.RootCAs)
	}
	return nil
}

// verifyChain verifies the server's certificate chain against roots (nil:
// the system's) without checking its name.
func verifyChain(roots *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tls: the server sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, ic := range cs.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
		return err
	}
}
