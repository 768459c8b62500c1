// Package hessian2 reads and writes the parts of Hessian 2.0 serialization
// (the Dubbo 2 default, serialization id 2) that a proxy needs: it reads
// strings, ints, longs, booleans and nulls, skips any other value without
// building it, and appends the few value kinds the Dubbo codec writes
// (strings, ints, longs, booleans, null, untyped maps).
//
// It is written by hand for speed and zero allocation. The reference Go
// implementation (github.com/apache/dubbo-go-hessian2, used by this
// package's tests as the oracle) decodes every value into interface{}
// values through reflection, allocating for each one, and has no way to
// step over a value without decoding it; a proxy that only needs the
// attachments after a request's arguments would pay for building every
// argument. Reader instead walks the encoded bytes in place: a string that
// is one chunk of canonical UTF-8 is returned as a slice of the input, and
// skipping a value costs a pass over its bytes.
//
// Wire semantics follow the Java implementation Dubbo runs
// (com.alibaba.com.caucho.hessian.io.Hessian2Input in hessian-lite): a
// string's length counts UTF-16 code units, each encoded in one to three
// bytes as chosen by its lead byte (characters beyond the BMP are two
// three-byte surrogates); a class definition ('C') is followed by the value
// that uses it; class definitions accumulate for the whole body (Dubbo
// decodes each message body with a fresh input, so Reset starts a new
// table). Where the reference Go decoder departs from Java (it reads a high
// surrogate and the three bytes after it as one pair whatever they are),
// Reader follows Java, because a Java provider is what will decode the
// bytes after the proxy; the tests document each such difference.
//
// Strictness. Skip refuses what Java would refuse or could read
// differently: unknown or reserved tags, bytes that cannot start a
// character, negative lengths, references to undefined classes, and input
// that ends inside a value. It does not check what does not change how
// many bytes a value takes (reference and type-reference indexes, the
// types named by lists and maps), which Java checks when it builds the
// value.
//
// Limits. Nesting of lists, maps and objects is bounded (DefaultMaxDepth,
// 64) and so is the number of class definitions remembered per body
// (DefaultMaxClassDefs, 1024); a fixed-length list or an object cannot
// claim more elements than bytes remain. Work is linear in the input: every
// value, however nested, consumes at least one byte.
//
// Concurrency. A Reader is used by one goroutine at a time; the Append
// functions are pure.
package hessian2
