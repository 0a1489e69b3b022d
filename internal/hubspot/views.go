package hubspot

import (
	"sync"
	"time"
)

// viewTTL is how long a consistent read of a ticket may stand in for another in UpdateTicket: the
// chain's threading reads the ticket by id seconds before it records the follow-up, and the chain
// serialises a contact's requests, so a second GET would only repeat the first.
const viewTTL = 30 * time.Second

// view is what UpdateTicket needs of a ticket's current state.
type view struct {
	lastMessage time.Time
	fileURLs    []string
	at          time.Time // when it was read, by the wall clock
}

func viewOf(o *object) view {
	return view{lastMessage: parseTime(o.prop(PropLastMessageAt)), fileURLs: splitURLs(o.prop(PropFileURLs)), at: time.Now()}
}

// viewCache keeps the last consistent view of each ticket this process read or wrote. Views from
// search are never kept: the index lags writes.
type viewCache struct {
	mu sync.Mutex
	m  map[string]view
}

func (c *viewCache) put(o *object) {
	if o.ID == "" {
		return
	}
	c.set(o.ID, viewOf(o))
}

func (c *viewCache) set(id string, v view) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]view{}
	}
	if len(c.m) >= 1024 {
		for k, old := range c.m {
			if time.Since(old.at) > viewTTL {
				delete(c.m, k)
			}
		}
	}
	c.m[id] = v
}

// get returns a view read less than viewTTL ago.
func (c *viewCache) get(id string) (view, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[id]
	if !ok || time.Since(v.at) > viewTTL {
		return view{}, false
	}
	return v, true
}

// wrote records what a PATCH set, so that the next follow-up compares with it.
func (c *viewCache) wrote(id string, props map[string]string) {
	c.mu.Lock()
	v, ok := c.m[id]
	c.mu.Unlock()
	if !ok {
		return
	}
	if s, ok := props[PropLastMessageAt]; ok {
		v.lastMessage = parseTime(s)
	}
	if s, ok := props[PropFileURLs]; ok {
		v.fileURLs = splitURLs(s)
	}
	v.at = time.Now()
	c.set(id, v)
}
