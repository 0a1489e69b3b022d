package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/health"
)

// S3Config configures the S3-compatible store (Cloudflare R2 in production).
type S3Config struct {
	Endpoint        string // R2_ENDPOINT_URL, https://<account>.r2.cloudflarestorage.com
	AccessKeyID     string // R2_ACCESS_KEY_ID
	SecretAccessKey string // R2_SECRET_ACCESS_KEY
	Bucket          string // R2_BUCKET_NAME
	PublicURL       string // R2_PUBLIC_URL: r2.dev or custom-domain base; objects are read at PublicURL/<key>
	Region          string // default "auto", what R2 expects

	// PartSize is the multipart part size, at least 5 MiB (the S3 minimum, default). Memory per
	// uploading file is about (PartConcurrency+2)·PartSize.
	PartSize int64
	// PartConcurrency is how many parts of one file are in flight (default 2).
	PartConcurrency int
	// MaxLargeUploads bounds the multipart uploads of streams (file URLs) in flight in this process,
	// across files and requests (default 1): each holds (PartConcurrency+2)·PartSize of buffers, so
	// this is what keeps memory flat when many large files arrive at once. Files known to be
	// smaller than a part skip it, and so do files on disk (PutAt), which hold no buffer.
	MaxLargeUploads int
	// Retry is the shared policy applied to each S3 request (parts included); zero means backoff.Default.
	Retry backoff.Policy
	// HTTPClient overrides the transport (tests); nil means one with sensible timeouts.
	HTTPClient *http.Client
}

// MinPartSize is S3's (and R2's) smallest multipart part.
const MinPartSize int64 = 5 << 20

// S3 stores objects in a bucket through the S3 API.
type S3 struct {
	cfg    S3Config
	client *s3.Client
	tm     *transfermanager.Client
	base   string
	large  chan struct{} // semaphore of multipart uploads
}

// NewS3 builds the client. It does not touch the network; Check does.
func NewS3(cfg S3Config) (*S3, error) {
	var missing []string
	for _, f := range []struct{ key, v string }{
		{"R2_ENDPOINT_URL", cfg.Endpoint}, {"R2_ACCESS_KEY_ID", cfg.AccessKeyID},
		{"R2_SECRET_ACCESS_KEY", cfg.SecretAccessKey}, {"R2_BUCKET_NAME", cfg.Bucket},
	} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.key)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("r2: missing %s", strings.Join(missing, ", "))
	}
	ep, err := url.Parse(strings.TrimSpace(cfg.Endpoint))
	if err != nil || (ep.Scheme != "https" && ep.Scheme != "http") || ep.Host == "" {
		return nil, errors.New("r2: R2_ENDPOINT_URL must be an http(s) URL such as https://<account-id>.r2.cloudflarestorage.com")
	}
	if ep.Path != "" && ep.Path != "/" {
		return nil, fmt.Errorf("r2: R2_ENDPOINT_URL must not include a path (%q): give the bucket in R2_BUCKET_NAME", ep.Path)
	}
	base, err := publicBase(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("r2: R2_PUBLIC_URL: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "auto"
	}
	if cfg.PartSize < MinPartSize {
		cfg.PartSize = MinPartSize
	}
	if cfg.PartConcurrency <= 0 {
		cfg.PartConcurrency = 2
	}
	if cfg.MaxLargeUploads <= 0 {
		cfg.MaxLargeUploads = 1
	}
	if cfg.Retry.Attempts == 0 {
		cfg.Retry = backoff.Default
	}
	var httpClient s3.HTTPClient = cfg.HTTPClient
	if cfg.HTTPClient == nil {
		httpClient = awshttp.NewBuildableClient().
			WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second }).
			WithTransportOptions(func(t *http.Transport) {
				t.ResponseHeaderTimeout = 2 * time.Minute
				t.TLSHandshakeTimeout = 10 * time.Second
			})
	}
	pol := cfg.Retry
	client := s3.New(s3.Options{
		Region:       cfg.Region,
		BaseEndpoint: aws.String(strings.TrimRight(ep.String(), "/")),
		UsePathStyle: true, // R2 supports it, and bucket names with dots keep a valid TLS name
		Credentials:  credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, ""),
		// R2 rejects some of the SDK's default streaming checksums (DESIGN section 9).
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		HTTPClient:                 httpClient,
		// The SDK decides what is retryable (5xx, throttling, resets); the shared policy decides
		// how often and how long to wait. No retry quota: one flaky upload must not starve the rest.
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = max(pol.Attempts, 1)
			o.MaxBackoff = pol.Max
			o.RateLimiter = ratelimit.None
			o.Backoff = retry.BackoffDelayerFunc(func(attempt int, _ error) (time.Duration, error) {
				return pol.Delay(attempt, 0), nil
			})
		}),
	})
	tm := transfermanager.New(client, func(o *transfermanager.Options) {
		o.PartSizeBytes = cfg.PartSize
		// Below one part a single PUT; the first part is buffered to decide, so the threshold is
		// the part size (the default 16 MiB would buffer more than a part).
		o.MultipartUploadThreshold = cfg.PartSize
		o.Concurrency = cfg.PartConcurrency
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.FailTimeout = abortTimeout // abort a failed multipart upload even when ctx is gone
	})
	return &S3{cfg: cfg, client: client, tm: tm, base: base, large: make(chan struct{}, cfg.MaxLargeUploads)}, nil
}

// Kind implements Backend.
func (s *S3) Kind() string { return "r2" }

// Put streams body into the bucket: one PUT below a part, multipart above (parts in flight bounded,
// so memory does not grow with the file). A failed multipart upload is aborted, leaving no object.
func (s *S3) Put(ctx context.Context, key string, body io.Reader, size int64, contentType string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	in := &transfermanager.UploadObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(key),
		Body:   body,
	}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	if size > 0 {
		// Lets the uploader raise the part size for very large files (10,000 parts at most).
		in.ContentLength = aws.Int64(size)
	}
	if size < 0 || size >= s.cfg.PartSize {
		// Waiting here leaves the source idle for a while; a source that gives up fails this file,
		// which a retry redoes, rather than memory growing with the number of large files.
		select {
		case s.large <- struct{}{}:
			defer func() { <-s.large }()
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if _, err := s.tm.UploadObject(ctx, in); err != nil {
		return "", fmt.Errorf("r2 upload: %w", describeS3Error(err, s.cfg.Bucket))
	}
	return s.URL(key), nil
}

// PutAt stores the first size bytes of r (a file on disk) at key. Above one part it runs the
// multipart protocol itself, each part a section of r read as it is sent, so that no part is
// copied into memory: transfermanager buffers (PartConcurrency+1)·PartSize for any body, which
// for a file on disk is memory spent for nothing (BENCHMARKS.md, memory). The SDK retries a part
// by reading its section again. A failed upload is aborted, leaving no object. progress, when
// set, is told the bytes stored so far after each part.
func (s *S3) PutAt(ctx context.Context, key string, r io.ReaderAt, size int64, contentType string, progress func(int64)) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	var ctype *string
	if contentType != "" {
		ctype = aws.String(contentType)
	}
	bucket := aws.String(s.cfg.Bucket)
	if size < s.cfg.PartSize {
		if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String(key), ContentType: ctype,
			Body: io.NewSectionReader(r, 0, size), ContentLength: aws.Int64(size)}); err != nil {
			return "", fmt.Errorf("r2 upload: %w", describeS3Error(err, s.cfg.Bucket))
		}
		if progress != nil {
			progress(size)
		}
		return s.URL(key), nil
	}
	partSize := s.cfg.PartSize
	if size/partSize >= maxParts {
		partSize = size/maxParts + 1
	}
	up, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: aws.String(key), ContentType: ctype})
	if err != nil {
		return "", fmt.Errorf("r2 upload: %w", describeS3Error(err, s.cfg.Bucket))
	}
	n := int((size + partSize - 1) / partSize)
	parts := make([]s3types.CompletedPart, n)
	var (
		mu   sync.Mutex
		done int64
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.PartConcurrency)
	for i := range n {
		off := int64(i) * partSize
		length := min(partSize, size-off)
		g.Go(func() error {
			out, err := s.client.UploadPart(gctx, &s3.UploadPartInput{Bucket: bucket, Key: aws.String(key), UploadId: up.UploadId,
				PartNumber: aws.Int32(int32(i + 1)), Body: io.NewSectionReader(r, off, length), ContentLength: aws.Int64(length)})
			if err != nil {
				return err
			}
			parts[i] = s3types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))}
			if progress != nil {
				mu.Lock()
				done += length
				progress(done)
				mu.Unlock()
			}
			return nil
		})
	}
	err = g.Wait()
	if err == nil {
		_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: bucket, Key: aws.String(key),
			UploadId: up.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}})
	}
	if err != nil {
		// Even when ctx is gone: an upload left open keeps its parts (and their cost) in the bucket.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_, _ = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: bucket, Key: aws.String(key), UploadId: up.UploadId})
		return "", fmt.Errorf("r2 upload: %w", describeS3Error(err, s.cfg.Bucket))
	}
	return s.URL(key), nil
}

const (
	// maxParts is S3's (and R2's) most parts in one upload.
	maxParts = 10000
	// abortTimeout bounds the abort of a failed multipart upload (transfermanager's FailTimeout).
	abortTimeout = 30 * time.Second
)

// URL is the public URL of key: R2_PUBLIC_URL/<key>, each segment escaped. Without a public URL it
// is the path-style API URL, which needs credentials to read (doctor warns about it).
func (s *S3) URL(key string) string {
	if s.base != "" {
		return s.base + "/" + escapeKey(key)
	}
	return strings.TrimRight(s.cfg.Endpoint, "/") + "/" + url.PathEscape(s.cfg.Bucket) + "/" + escapeKey(key)
}

// Check says whether the bucket is reachable and writable, by a HeadBucket and a small probe
// object under _doctor/ that is deleted straight away.
func (s *S3) Check(ctx context.Context) []health.Check { return s.check(ctx, true) }

// CheckReadOnly is Check without the write probe (`doctor --dry-run` puts nothing in the bucket).
func (s *S3) CheckReadOnly(ctx context.Context) []health.Check { return s.check(ctx, false) }

func (s *S3) check(ctx context.Context, probeWrite bool) []health.Check {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out []health.Check

	reach := health.Check{Service: "r2", Name: "bucket reachable"}
	_, headErr := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.cfg.Bucket)})
	if !probeWrite {
		if headErr != nil {
			reach.Status, reach.Detail = health.Fail, describeS3Error(headErr, s.cfg.Bucket).Error()+" (an object-scoped token may be refused HeadBucket: run doctor without --dry-run to try a write)"
		} else {
			reach.Status, reach.Detail = health.OK, fmt.Sprintf("bucket %q at %s (write not probed: --dry-run)", s.cfg.Bucket, s.cfg.Endpoint)
		}
		return append(out, reach, s.publicCheck(headErr == nil))
	}

	write := health.Check{Service: "r2", Name: "bucket writable"}
	probe := fmt.Sprintf("_doctor/probe-%s", randomHex(8))
	_, putErr := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(s.cfg.Bucket),
		Key:         aws.String(probe),
		Body:        bytes.NewReader([]byte("figsupport doctor probe\n")),
		ContentType: aws.String("text/plain; charset=utf-8"),
	})
	switch {
	case putErr != nil:
		write.Status, write.Detail = health.Fail, fmt.Sprintf("cannot write to bucket %q: %v", s.cfg.Bucket, describeS3Error(putErr, s.cfg.Bucket))
	default:
		_, delErr := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(probe)})
		if delErr != nil {
			write.Status, write.Detail = health.Warn, fmt.Sprintf("wrote probe %s but could not delete it: %v", probe, describeS3Error(delErr, s.cfg.Bucket))
		} else {
			write.Status, write.Detail = health.OK, fmt.Sprintf("wrote and deleted %s in bucket %q", probe, s.cfg.Bucket)
		}
	}

	switch {
	case headErr == nil:
		reach.Status, reach.Detail = health.OK, fmt.Sprintf("bucket %q at %s", s.cfg.Bucket, s.cfg.Endpoint)
	case putErr == nil:
		// An object-scoped token may be refused HeadBucket yet do everything uploads need.
		reach.Status, reach.Detail = health.Warn, fmt.Sprintf("HeadBucket on %q failed (%v) but writing works; the token is probably object-scoped, which is enough", s.cfg.Bucket, describeS3Error(headErr, s.cfg.Bucket))
	default:
		reach.Status, reach.Detail = health.Fail, describeS3Error(headErr, s.cfg.Bucket).Error()
	}
	return append(out, reach, write, s.publicCheck(headErr == nil || putErr == nil))
}

// publicCheck says where files are published; it says nothing is fine while the bucket itself is
// not (bucketOK false): links to a bucket nobody reaches lead nowhere.
func (s *S3) publicCheck(bucketOK bool) health.Check {
	pub := health.Check{Service: "r2", Name: "public URL"}
	if !bucketOK {
		pub.Status, pub.Detail = health.Skip, "not checked: the bucket failed its check above"
		return pub
	}
	if s.base == "" {
		pub.Status, pub.Detail = health.Warn, "R2_PUBLIC_URL is not set: stored links point at the S3 API and are not readable without credentials; enable the bucket's r2.dev URL or connect a custom domain and set R2_PUBLIC_URL"
	} else {
		pub.Status, pub.Detail = health.OK, "files are published under "+s.base+"/"
	}
	return pub
}

// describeS3Error turns SDK errors into a sentence that says what to fix. SDK errors carry the
// request id and status, never the credentials.
func describeS3Error(err error, bucket string) error {
	var nsb *s3types.NoSuchBucket
	var nf *s3types.NotFound
	if errors.As(err, &nsb) || errors.As(err, &nf) {
		return fmt.Errorf("bucket %q does not exist at this endpoint (check R2_BUCKET_NAME and the account id in R2_ENDPOINT_URL): %w", bucket, err)
	}
	var oe *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) || errors.As(err, &oe) {
		return fmt.Errorf("cannot reach the endpoint (check R2_ENDPOINT_URL and the network): %w", err)
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		var api smithy.APIError
		code := ""
		if errors.As(err, &api) {
			code = api.ErrorCode()
		}
		switch {
		case re.HTTPStatusCode() == http.StatusNotFound:
			return fmt.Errorf("bucket %q does not exist at this endpoint (check R2_BUCKET_NAME and the account id in R2_ENDPOINT_URL): %w", bucket, err)
		case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch":
			return fmt.Errorf("credentials rejected (%s): check R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY: %w", code, err)
		case re.HTTPStatusCode() == http.StatusUnauthorized || re.HTTPStatusCode() == http.StatusForbidden:
			return fmt.Errorf("access denied to bucket %q: the API token needs Object Read & Write on this bucket: %w", bucket, err)
		}
		return err
	}
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}
