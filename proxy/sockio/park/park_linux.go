//go:build linux

package park

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Parker holds parked connections in an epoll instance, with one
// goroutine that waits in epoll_wait for the first of them to have input
// or for the earliest deadline, and an eventfd that wakes it (Close, or a
// first deadline to wait for). New starts the goroutine; Close ends it.
// The caller of New owns the Parker and must Close it. Safe for
// concurrent use.
//
// What a parked connection costs: the socket's duplicate descriptor, a
// 24-byte slot and a 16-byte deadline entry (the slices grow to the most
// connections parked at once and are dropped once none is left), and
// whatever its Owner holds.
//
// Deadlines are kept in a queue in the order connections are parked, for
// one timeout for all (the handshake deadline of a server): a deadline
// before the last one parked is taken as that one. Connections that left
// before their deadline stay in the queue until it comes to them.
type Parker struct {
	// Read-only after New; the descriptors are closed by run.
	epfd, wakefd int
	epoch        time.Time     // deadlines are durations since epoch (monotonic)
	done         chan struct{} // closed when run returns
	one          [8]byte       // the eventfd increment

	mu       sync.Mutex
	closed   bool
	sleeping bool     // run waits without a timeout: a first deadline must wake it
	slots    []slot   // by slot number; owner nil: free
	free     []uint32 // free slot numbers
	live     int      // slots in use
	queue    []due    // queue[head:] by deadline, with entries of connections that left
	head     int
	last     time.Duration // the last deadline queued
	nextID   uint32        // tells a slot's occupants apart, for the queue and for epoll's events
}

// slot is one parked connection.
type slot struct {
	owner Owner
	fd    int32
	id    uint32
}

// due is a parked connection's deadline; it is stale once the slot holds
// another id (or none).
type due struct {
	slot, id uint32
	at       time.Duration // since Parker.epoch
}

const (
	// wakeEvent marks the eventfd's events (a slot number is never
	// negative as an int32: there are fewer descriptors).
	wakeEvent int32 = -1
	// batch is how many events one epoll_wait returns at most.
	batch = 128
	// keepCap is the capacity kept for the slots and the queue when they
	// empty; more is dropped, so that a burst's memory returns.
	keepCap = 256
)

// New returns a Parker and starts its goroutine.
func New() (*Parker, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	r, _, e := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if e != 0 {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("eventfd2", e)
	}
	wakefd := int(r)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeEvent}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		syscall.Close(wakefd)
		syscall.Close(epfd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	p := &Parker{epfd: epfd, wakefd: wakefd, epoch: time.Now(), done: make(chan struct{}), nextID: 1}
	binary.NativeEndian.PutUint64(p.one[:], 1)
	go p.run()
	return p, nil
}

// Park takes c, a connection with a socket descriptor (syscall.Conn), and
// holds it until it has input (owner.Ready), or its peer leaves or
// deadline passes (owner.Gone), whichever comes first. On success c is
// closed and the Parker owns its socket through a duplicate descriptor;
// on error c is left as it was, stays the caller's and owner is never
// called: ErrReady when it has input or its peer's FIN already (serve it
// at once: parking it would only cost more), ErrClosed once Close has
// begun, or the socket's error (a reset, which a read will then not
// report again).
func (p *Parker) Park(c net.Conn, deadline time.Time, owner Owner) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return errors.New("park: the connection has no descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	fd, peekErr, dupErr := -1, error(nil), error(nil)
	if err := rc.Control(func(s uintptr) {
		if peekErr = peek(int(s)); peekErr == syscall.EAGAIN {
			fd, dupErr = dupCloseOnExec(int(s))
		}
	}); err != nil {
		return err
	}
	switch {
	case peekErr == nil || peekErr == io.EOF:
		return ErrReady
	case peekErr != syscall.EAGAIN:
		return peekErr
	case dupErr != nil:
		return os.NewSyscallError("fcntl", dupErr)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		syscall.Close(fd)
		return ErrClosed
	}
	n, id := p.take(owner, fd)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(n), Pad: int32(id)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.leave(n)
		syscall.Close(fd)
		return os.NewSyscallError("epoll_ctl", err)
	}
	at := max(deadline.Sub(p.epoch), p.last)
	p.last = at
	p.queue = append(p.queue, due{slot: n, id: id, at: at})
	if p.sleeping {
		p.sleeping = false
		p.wake()
	}
	// The socket lives on in fd: closing c returns its poll descriptor to
	// the runtime and sends nothing to the peer.
	c.Close()
	return nil
}

// dupCloseOnExec duplicates fd; the duplicate shares fd's open file
// description (its socket, its non-blocking flag).
func dupCloseOnExec(fd int) (int, error) {
	for {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(r), nil
	}
}

// take gives owner a slot. Called with mu held.
func (p *Parker) take(owner Owner, fd int) (n, id uint32) {
	id = p.nextID
	if p.nextID++; p.nextID == 0 {
		p.nextID = 1
	}
	if k := len(p.free); k > 0 {
		n = p.free[k-1]
		p.free = p.free[:k-1]
	} else {
		n = uint32(len(p.slots))
		p.slots = append(p.slots, slot{})
	}
	p.slots[n] = slot{owner: owner, fd: int32(fd), id: id}
	p.live++
	return n, id
}

// lookup returns slot n if it still holds id. Called with mu held.
func (p *Parker) lookup(n, id uint32) (slot, bool) {
	if n >= uint32(len(p.slots)) || p.slots[n].owner == nil || p.slots[n].id != id {
		return slot{}, false
	}
	return p.slots[n], true
}

// leave frees slot n. Called with mu held.
func (p *Parker) leave(n uint32) {
	p.slots[n] = slot{}
	p.free = append(p.free, n)
	p.live--
}

// wake makes run's epoll_wait return. Called with mu held.
func (p *Parker) wake() {
	for {
		_, err := syscall.Write(p.wakefd, p.one[:])
		if err != syscall.EINTR {
			return // EAGAIN: the counter is already non-zero
		}
	}
}

// Len returns how many connections are parked.
func (p *Parker) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.live
}

// Close closes every parked connection (owner.Gone(ErrClosed)), waits for
// the Parker's goroutine to end and closes its descriptors. Park fails
// with ErrClosed from then on. Idempotent.
func (p *Parker) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.wake()
	}
	p.mu.Unlock()
	<-p.done
}

// gone is a connection leaving on a deadline or at Close: its descriptor
// is closed, then its owner told, outside mu.
type gone struct {
	owner Owner
	fd    int
}

// run is the Parker's goroutine: it waits in epoll_wait, hands back the
// connections with input, closes those whose deadline passed, and ends
// when the Parker closes.
func (p *Parker) run() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, batch)
	var expired []gone
	for {
		msec, ok := p.next()
		if !ok {
			break
		}
		n, err := syscall.EpollWait(p.epfd, events, msec)
		if err == syscall.EINTR {
			continue
		}
		if err != nil { // not expected of a valid epoll descriptor: close all
			p.mu.Lock()
			p.closed = true
			p.mu.Unlock()
			break
		}
		for _, ev := range events[:n] {
			if ev.Fd == wakeEvent {
				var b [8]byte
				syscall.Read(p.wakefd, b[:])
				continue
			}
			p.ready(uint32(ev.Fd), uint32(ev.Pad))
		}
		expired = p.expire(expired[:0])
		for i, g := range expired {
			syscall.Close(g.fd)
			g.owner.Gone(ErrDeadline)
			expired[i] = gone{}
		}
		if cap(expired) > keepCap {
			expired = nil
		}
	}
	p.closeAll()
}

// next drops the queue's stale entries up to the first live one and
// returns epoll_wait's timeout: until that one's deadline, -1 (none) when
// nothing is parked; false when the Parker is closed. It drops the slots
// and the queue when they empty, if they had grown.
func (p *Parker) next() (msec int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, false
	}
	for p.head < len(p.queue) {
		d := p.queue[p.head]
		if _, live := p.lookup(d.slot, d.id); live {
			break
		}
		p.pop()
	}
	if p.live == 0 && cap(p.slots) > keepCap {
		p.slots, p.free = nil, nil
	}
	if p.head == len(p.queue) {
		if cap(p.queue) > keepCap {
			p.queue = nil
		}
		p.sleeping = true
		return -1, true
	}
	p.sleeping = false
	wait := p.queue[p.head].at - time.Since(p.epoch)
	if wait <= 0 {
		return 0, true
	}
	return int(min((wait+time.Millisecond-1)/time.Millisecond, math.MaxInt32)), true
}

// pop drops the queue's first entry, moving the rest down when half of
// the queue is gone. Called with mu held.
func (p *Parker) pop() {
	p.queue[p.head] = due{}
	p.head++
	switch {
	case p.head == len(p.queue):
		p.queue, p.head = p.queue[:0], 0
	case p.head >= keepCap && p.head >= len(p.queue)/2:
		k := copy(p.queue, p.queue[p.head:])
		p.queue, p.head = p.queue[:k], 0
	}
}

// ready hands back the connection of slot n if it still holds id and
// has input; one whose peer hung up or reset before sending anything is
// closed instead (Gone with io.EOF or the error), without a goroutine or
// a net.Conn; a spurious event re-arms it. Only run frees slots, so the
// slot holds while ready peeks without mu.
func (p *Parker) ready(n, id uint32) {
	p.mu.Lock()
	s, ok := p.lookup(n, id)
	p.mu.Unlock()
	if !ok {
		return
	}
	fd := int(s.fd)
	err := peek(fd)
	if err == syscall.EAGAIN {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(n), Pad: int32(id)}
		if syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, fd, &ev) == nil {
			return
		}
	}
	p.mu.Lock()
	p.leave(n)
	p.mu.Unlock()
	if err != nil {
		syscall.Close(fd)
		s.owner.Gone(err)
		return
	}
	// The new descriptors share the socket's open file description, which
	// would keep the registration alive after fd is closed.
	syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
	c, err := handBack(fd)
	if err != nil {
		s.owner.Gone(err)
		return
	}
	s.owner.Ready(c)
}

// peek says whether fd has input: nil when it has, io.EOF after the
// peer's FIN with nothing before it, EAGAIN when nothing happened, or the
// socket's error (a reset), which the kernel reports once.
func peek(fd int) error {
	var b [1]byte
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return syscall.EAGAIN
		case e != 0:
			return os.NewSyscallError("recvfrom", e)
		case n == 0:
			return io.EOF
		}
		return nil
	}
}

// handBack makes a net.Conn of fd, which it closes.
func handBack(fd int) (net.Conn, error) {
	// Blocking, so that os.NewFile does not put fd in the runtime's poller:
	// net.FileConn registers its own duplicate, which it makes
	// non-blocking again (the flag is the open file description's, shared
	// by both).
	syscall.SetNonblock(fd, false)
	f := os.NewFile(uintptr(fd), "parked")
	c, err := net.FileConn(f)
	f.Close()
	return c, err
}

// expire appends to out the connections whose deadline has passed, and
// frees their slots.
func (p *Parker) expire(out []gone) []gone {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Since(p.epoch)
	for p.head < len(p.queue) && p.queue[p.head].at <= now {
		d := p.queue[p.head]
		if s, ok := p.lookup(d.slot, d.id); ok {
			out = append(out, gone{owner: s.owner, fd: int(s.fd)})
			p.leave(d.slot)
		}
		p.pop()
	}
	return out
}

// closeAll closes every parked connection and the Parker's descriptors,
// once closed is set.
func (p *Parker) closeAll() {
	p.mu.Lock()
	var all []gone
	for _, s := range p.slots {
		if s.owner != nil {
			all = append(all, gone{owner: s.owner, fd: int(s.fd)})
		}
	}
	p.slots, p.free, p.live, p.queue, p.head = nil, nil, 0, nil, 0
	p.mu.Unlock()
	for _, g := range all {
		syscall.Close(g.fd)
		g.owner.Gone(ErrClosed)
	}
	syscall.Close(p.wakefd)
	syscall.Close(p.epfd)
}
