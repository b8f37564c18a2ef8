// Simulated agents for Rampart's fleet benchmark, one goroutine each, in a compiled client so
// that the simulation takes less of the 2-core machine the CA is measured on (the Node client,
// bench/fleet-client.ts, spends about 2 ms of CPU per TLS connection; the CA is what is measured).
//
// Same protocol and behaviour as bench/fleet-client.ts: before the clock starts it makes one
// fresh P-256 key and CSR per agent (tokens come minted, one per line, in -tokens-file) and
// prints READY; on the stdin line GO every agent asks for its certificate at once over its own
// new TLS connection (no session resumption: a freshly started pod has none), verifying the
// CA's chain and name. 429/503 honour Retry-After plus up to 1 s of jitter; transport errors back
// off exponentially with full jitter from 1 s; any other answer is a permanent failure, as is
// having no certificate at the deadline. After the clock stops every certificate is checked
// (checkIssued); one that does not check out is a permanent failure. Prints BENCH_RESULT {json}
// as the Node client does.
//
// With -floor N it is instead the client half of the fleet's TLS floor (bench/tls-floor.ts): it
// posts an agent-sized request over N new connections, -concurrency at a time, to a bare TLS
// server, prints WARMED after a warm-up, and on GO measures its own CPU over the N connections.
package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type result struct {
	Index             int            `json:"index"`
	Agents            int            `json:"agents"`
	Certified         int            `json:"certified"`
	PermanentFailures int            `json:"permanentFailures"`
	GoAt              int64          `json:"goAt"`
	LastCertifiedAt   int64          `json:"lastCertifiedAt"`
	CPUSeconds        float64        `json:"cpuSeconds"`
	Attempts          int            `json:"attempts"`
	Status429         int            `json:"status429"`
	Status503         int            `json:"status503"`
	TransportErrors   int            `json:"transportErrors"`
	FailureKinds      map[string]int `json:"failureKinds"`
	CertifiedAfterMs  []int64        `json:"certifiedAfterMs"`
	// Certificates checked after the clock stopped: chain to the root, the agent's own key, its SPIFFE ID.
	Verified int `json:"verified"`
}

var (
	statusLine = regexp.MustCompile(`^HTTP/1\.1 (\d{3}) `)
	retryAfter = regexp.MustCompile(`(?i)\r\nretry-after: *(\d+)`)
	errorCode  = regexp.MustCompile(`"code":"([A-Z_]+)"`)
)

type answer struct {
	status     int
	retryAfter int // seconds; -1 when absent
	code       string
	transport  string
	body       string // a 200's JSON, checked after the clock stops
}

func nowMs() int64 { return time.Now().UnixMilli() }

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func makeCsrBody() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, err
	}
	body, err := json.Marshal(map[string]string{"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
	return key, body, err
}

// checkIssued is why a 200 is not taken on trust (outside audit of the bench): the chain must
// verify to the CA's root as a client certificate, certify the agent's own key, and name the
// agent's SPIFFE ID and nothing else. It returns "" or what is wrong.
func checkIssued(body string, roots *x509.CertPool, key *ecdsa.PrivateKey, spiffeID string) string {
	var answer struct {
		CertChain []string `json:"certChain"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil || len(answer.CertChain) == 0 {
		return "no certChain"
	}
	var chain []*x509.Certificate
	for _, p := range answer.CertChain {
		block, _ := pem.Decode([]byte(p))
		if block == nil {
			return "not PEM"
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return "unparsable"
		}
		chain = append(chain, c)
	}
	leaf := chain[0]
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "chain"
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return "key"
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != spiffeID || len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 0 {
		return "spiffe id"
	}
	return ""
}

func transportKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return "ECONNRESET"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "ECONNREFUSED"
	case errors.Is(err, syscall.EPIPE):
		return "EPIPE"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	}
	return "other"
}

func post(addr string, cfg *tls.Config, req []byte, timeout time.Duration) answer {
	deadline := time.Now().Add(timeout)
	conn, err := tls.DialWithDialer(&net.Dialer{Deadline: deadline}, "tcp", addr, cfg)
	if err != nil {
		return answer{transport: transportKind(err)}
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write(req); err != nil {
		return answer{transport: transportKind(err)}
	}
	raw, err := io.ReadAll(conn)
	if err != nil && len(raw) == 0 {
		return answer{transport: transportKind(err)}
	}
	text := string(raw)
	headerEnd := strings.Index(text, "\r\n\r\n")
	m := statusLine.FindStringSubmatch(text)
	if headerEnd < 0 || m == nil {
		return answer{transport: "no HTTP response"}
	}
	status, _ := strconv.Atoi(m[1])
	head, body := text[:headerEnd], text[headerEnd+4:]
	if status == 200 {
		if strings.Contains(body, `"certChain"`) {
			return answer{status: 200, body: body}
		}
		return answer{transport: "200 without certChain"}
	}
	a := answer{status: status, retryAfter: -1}
	if r := retryAfter.FindStringSubmatch(head); r != nil {
		a.retryAfter, _ = strconv.Atoi(r[1])
	}
	if c := errorCode.FindStringSubmatch(body); c != nil {
		a.code = c[1]
	}
	return a
}

func main() {
	caURL := flag.String("url", "", "CA base URL")
	caFile := flag.String("ca-file", "", "root certificate PEM")
	tokensFile := flag.String("tokens-file", "", "one bearer token per line")
	agents := flag.Int("agents", 5000, "simulated agents")
	index := flag.Int("index", 0, "client process index")
	deadlineS := flag.Int("deadline", 60, "seconds")
	spiffePrefix := flag.String("spiffe-prefix", "", "agent i's certificate must name this SPIFFE ID followed by i")
	floor := flag.Int("floor", 0, "TLS floor mode: this many connections")
	concurrency := flag.Int("concurrency", 32, "TLS floor mode: connections at a time")
	tokenBytes := flag.Int("token-bytes", 0, "TLS floor mode: size of the opaque bearer token")
	bodyBytes := flag.Int("body-bytes", 0, "TLS floor mode: size of the opaque request body")
	flag.Parse()

	u, err := url.Parse(*caURL)
	if err != nil || u.Port() == "" {
		fail("bad -url %q", *caURL)
	}
	host := u.Hostname()
	dialHost := host
	if host == "localhost" {
		dialHost = "127.0.0.1" // no IPv6/DNS lookups per agent, as the Node client
	}
	addr := net.JoinHostPort(dialHost, u.Port())
	rootPem, err := os.ReadFile(*caFile)
	if err != nil {
		fail("read -ca-file: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPem) {
		fail("no certificate in %s", *caFile)
	}
	// No ClientSessionCache: every connection is a full handshake, as for a pod that just started.
	cfg := &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12}

	if *floor > 0 {
		if *tokenBytes <= 0 || *bodyBytes <= 0 {
			fail("-floor needs -token-bytes and -body-bytes")
		}
		runFloor(addr, u.Host, cfg, *floor, *concurrency, *tokenBytes, *bodyBytes)
		return
	}
	if *spiffePrefix == "" {
		fail("-spiffe-prefix is needed to check the certificates")
	}
	runFleet(addr, u.Host, cfg, roots, *spiffePrefix, *tokensFile, *agents, *index, *deadlineS)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fleet-go: "+format+"\n", args...)
	os.Exit(1)
}

func waitForGo() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() && !strings.HasPrefix(in.Text(), "GO") {
	}
}

func request(hostHeader, token string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST /v1/certificates HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", hostHeader, token, len(body))
	b.Write(body)
	return b.Bytes()
}

const timeout = 15 * time.Second // the agent's CaClient default

func runFloor(addr, hostHeader string, cfg *tls.Config, connections, concurrency, tokenBytes, bodyBytes int) {
	// Opaque to the floor server: a request the size of an agent's (token and CSR body).
	req := request(hostHeader, strings.Repeat("x", tokenBytes), bytes.Repeat([]byte{'A'}, bodyBytes))
	run := func(count int) {
		var next int64
		var wg sync.WaitGroup
		for w := 0; w < concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for atomic.AddInt64(&next, 1) <= int64(count) {
					if a := post(addr, cfg, req, timeout); a.status != 200 {
						fail("TLS floor connection failed: %d %s", a.status, a.transport)
					}
				}
			}()
		}
		wg.Wait()
	}
	run(200) // warm-up, as the Node floor client does
	fmt.Println("WARMED")
	waitForGo()
	before := cpuSeconds()
	run(connections)
	out, _ := json.Marshal(map[string]any{"connections": connections, "cpuSeconds": cpuSeconds() - before})
	fmt.Printf("BENCH_RESULT %s\n", out)
}

func runFleet(addr, hostHeader string, cfg *tls.Config, roots *x509.CertPool, spiffePrefix, tokensFile string, agents, index, deadlineS int) {
	tokenBytes, err := os.ReadFile(tokensFile)
	if err != nil {
		fail("read -tokens-file: %v", err)
	}
	tokens := strings.Split(strings.TrimSpace(string(tokenBytes)), "\n")
	if len(tokens) < agents {
		fail("%d tokens for %d agents", len(tokens), agents)
	}

	prepStarted := time.Now()
	requests := make([][]byte, agents)
	keys := make([]*ecdsa.PrivateKey, agents)
	issued := make([]string, agents)
	for i := range requests {
		key, body, err := makeCsrBody()
		if err != nil {
			fail("CSR: %v", err)
		}
		keys[i] = key
		requests[i] = request(hostHeader, tokens[i], body)
	}
	fmt.Fprintf(os.Stderr, "  fleet client %d (go): %d keys + CSRs in %d ms\n", index, agents, time.Since(prepStarted).Milliseconds())

	fmt.Println("READY")
	waitForGo()

	res := result{Index: index, Agents: agents, FailureKinds: map[string]int{}, CertifiedAfterMs: []int64{}}
	var mu sync.Mutex
	res.GoAt = nowMs()
	cpuAtGo := cpuSeconds()
	deadlineAt := time.UnixMilli(res.GoAt).Add(time.Duration(deadlineS) * time.Second)
	var wg sync.WaitGroup
	for i := 0; i < agents; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := mrand.New(mrand.NewSource(int64(i)*7919 + time.Now().UnixNano()))
			backoffs := 0
			for time.Now().Before(deadlineAt) {
				a := post(addr, cfg, requests[i], timeout)
				mu.Lock()
				res.Attempts++
				switch {
				case a.status == 200:
					t := nowMs()
					res.Certified++
					if t > res.LastCertifiedAt {
						res.LastCertifiedAt = t
					}
					res.CertifiedAfterMs = append(res.CertifiedAfterMs, t-res.GoAt)
					issued[i] = a.body
					mu.Unlock()
					return
				case a.status == 429 || a.status == 503:
					if a.status == 429 {
						res.Status429++
					} else {
						res.Status503++
					}
					mu.Unlock()
					wait := 1.0
					if a.retryAfter >= 0 {
						wait = float64(a.retryAfter)
					}
					time.Sleep(time.Duration((wait + rng.Float64()) * float64(time.Second)))
				case a.status == 0:
					res.TransportErrors++
					res.FailureKinds["transport:"+a.transport]++
					mu.Unlock()
					ceiling := math.Min(60_000, 1000*math.Pow(2, float64(backoffs)))
					backoffs++
					time.Sleep(time.Duration(rng.Float64() * ceiling * float64(time.Millisecond)))
				default:
					code := a.code
					if code == "" {
						code = "?"
					}
					res.FailureKinds[fmt.Sprintf("%d:%s", a.status, code)]++
					mu.Unlock()
					return
				}
			}
			mu.Lock()
			res.FailureKinds["deadline"]++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	res.CPUSeconds = math.Round((cpuSeconds()-cpuAtGo)*100) / 100
	// After the clock: a certificate that does not check out is a permanent failure.
	for i, body := range issued {
		if body == "" {
			continue
		}
		if wrong := checkIssued(body, roots, keys[i], spiffePrefix+strconv.Itoa(i)); wrong != "" {
			res.FailureKinds["invalid certificate: "+wrong]++
		} else {
			res.Verified++
		}
	}
	res.PermanentFailures = res.Agents - res.Verified
	out, _ := json.Marshal(res)
	fmt.Printf("BENCH_RESULT %s\n", out)
}
