package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

const gib = 1 << 30

// sparse is a 1 GiB file that takes no room on disk.
func sparse(b *testing.B) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "scan.glb")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Truncate(gib); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

// uploadEnv is the binary's environment for a 1 GiB upload: the embedded CRM, tracker and
// outbox, R2 pointed at a server that discards, a file cap above the file; extra keys appended.
func uploadEnv(b *testing.B, s3 string, extra ...string) []string {
	env := append(BaseEnv(b.TempDir(), filepath.Join(b.TempDir(), "data")),
		"R2_ENDPOINT_URL="+s3, "R2_ACCESS_KEY_ID=AKIDTEST", "R2_SECRET_ACCESS_KEY=r2-secret-key-0123456789",
		"R2_BUCKET_NAME="+Bucket, "R2_PUBLIC_URL=https://pub.example.r2.dev", fmt.Sprintf("FIGSUPPORT_MAX_FILE_BYTES=%d", 2*gib))

	return append(env, extra...)
}

func reportRSS(b *testing.B, peaks []int64) {
	s := slices.Clone(peaks)
	slices.Sort(s)
	b.ReportMetric(MiB(s[len(s)-1]), "peak-RSS-max-MiB")
	b.ReportMetric(MiB(s[len(s)/2]), "peak-RSS-median-MiB")
	b.ReportMetric(MiB(s[0]), "peak-RSS-min-MiB")
}

// BenchmarkUploadRSS is the peak resident memory of the process that uploads a 1 GiB file to R2
// (a server that discards the bytes, no latency), one run per iteration, each its own process:
// `process` with the file's path, and `serve` taking it as a multipart upload (spooled to disk,
// then uploaded). The metrics are the largest, median and smallest peak over the runs.
//
//	go test -run '^$' -bench UploadRSS -benchtime 5x ./internal/bench
func BenchmarkUploadRSS(b *testing.B) {
	bin := binary(b)
	var d DiscardS3
	s3 := httptest.NewServer(&d)
	b.Cleanup(s3.Close)
	file := sparse(b)
	b.Run("process", func(b *testing.B) {
		var peaks []int64
		i := 0
		for b.Loop() {
			before := d.Received()
			body, _ := json.Marshal(map[string]any{"objet": "Scan 3D", "description": "Le scan complet.",
				"user_email": fmt.Sprintf("scan%d@example.com", i), "fichiers": []map[string]string{{"name": "scan.glb", "path": file}}})
			e, err := Exec(context.Background(), bin, uploadEnv(b, s3.URL), string(body), "process", "-")
			if err != nil || e.Code != 0 {
				b.Fatalf("process: exit %d %v\n%s", e.Code, err, e.Stderr)
			}
			if got := d.Received() - before; got != gib {
				b.Fatalf("R2 received %d bytes, want %d", got, gib)
			}
			peaks = append(peaks, e.MaxRSS)
			i++
		}
		reportRSS(b, peaks)
	})
	b.Run("serve-multipart", func(b *testing.B) {
		var peaks []int64
		i := 0
		for b.Loop() {
			before := d.Received()
			dm, err := StartDaemon(context.Background(), bin, uploadEnv(b, s3.URL, "FIGSUPPORT_SYNC_TIMEOUT=10m"), "--mode", "sync")
			if err != nil {
				b.Fatal(err)
			}
			status, err := postFile(dm.URL, file, fmt.Sprintf("scan-serve%d@example.com", i))
			if err != nil || status != http.StatusOK {
				b.Fatalf("post: %d %v\n%s", status, err, dm.Log())
			}
			m, err := ReadMemory(dm.Pid())
			if err != nil {
				b.Fatal(err)
			}
			if err := dm.Stop(); err != nil {
				b.Fatal(err)
			}
			if got := d.Received() - before; got != gib {
				b.Fatalf("R2 received %d bytes, want %d", got, gib)
			}
			peaks = append(peaks, m.Peak)
			i++
		}
		reportRSS(b, peaks)
	})
}

// postFile posts path as a multipart upload, streamed.
func postFile(url, path, email string) (int, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			for k, v := range map[string]string{"objet": "Scan 3D", "description": "Le scan complet.", "user_email": email} {
				if err := mw.WriteField(k, v); err != nil {
					return err
				}
			}
			w, err := mw.CreateFormFile("fichiers", filepath.Base(path))
			if err != nil {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(w, f); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequest(http.MethodPost, url+"/webhook/request", pr)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	c := &http.Client{Timeout: 10 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
