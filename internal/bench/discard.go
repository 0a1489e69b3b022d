package bench

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// DiscardS3 answers the S3 calls an upload makes (PutObject and the multipart protocol) and throws
// the bytes away, counting them: gofakes3 keeps every byte in memory, which would make a 1 GiB
// upload cost the benchmark's own process a gigabyte.
type DiscardS3 struct {
	received atomic.Int64
	ids      atomic.Int64
}

// Received is how many bytes of object data arrived.
func (d *DiscardS3) Received() int64 { return d.received.Load() }

// ServeHTTP answers one S3 call.
func (d *DiscardS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, _ := io.Copy(io.Discard, r.Body)
	key := r.URL.Path[strings.IndexByte(r.URL.Path[1:], '/')+2:] // after /bucket/
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>%s</Bucket><Key>%s</Key><UploadId>up-%d</UploadId></InitiateMultipartUploadResult>`,
			Bucket, key, d.ids.Add(1))
	case r.Method == http.MethodPut && q.Has("partNumber"):
		d.received.Add(n)
		w.Header().Set("ETag", `"part-`+q.Get("partNumber")+`"`)
	case r.Method == http.MethodPost && q.Has("uploadId"):
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Bucket>%s</Bucket><Key>%s</Key><ETag>"done-1"</ETag></CompleteMultipartUploadResult>`, Bucket, key)
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut:
		d.received.Add(n)
		w.Header().Set("ETag", `"single"`)
	case r.Method == http.MethodHead:
		w.WriteHeader(http.StatusOK)
	default:
		http.Error(w, "unexpected "+r.Method, http.StatusBadRequest)
	}
}
