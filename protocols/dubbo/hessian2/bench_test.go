package hessian2

import (
	"testing"
	"time"
)

// typicalArgs encodes an argument list as a Java consumer sends one: a
// string id, an int, a POJO with a nested POJO and a list, a list of
// strings, a map, a date.
func typicalArgs(b testing.TB) []byte {
	user := &refUser{
		Name: "alice", Age: 30, Balance: 12.5, Tags: []string{"vip", "beta"},
		Scores: []int32{1, 2, 3}, Home: &refAddress{"1 Main St", 94105},
		Extra:    map[interface{}]interface{}{"source": "web"},
		Birthday: time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC), ID: 1 << 40,
	}
	return refEncode(b, "order-0001", int32(3), user, []string{"a", "b", "c"},
		map[interface{}]interface{}{"k": "v", "n": int32(1)}, time.Unix(1700000000, 0))
}

func BenchmarkSkipArguments(b *testing.B) {
	in := typicalArgs(b)
	var r Reader
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		r.Reset(in)
		for range 6 {
			if err := r.Skip(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkReadString(b *testing.B) {
	cases := []struct {
		name string
		in   []byte
	}{
		{"ascii", AppendString(nil, "com.example.demo.DemoService")},
		{"cjk", AppendString(nil, "订单服务-查询接口")},
		{"emoji", AppendString(nil, "hello 😀 world")},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var r Reader
			dst := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(c.in)
				if _, _, err := r.ReadString(dst[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendString(b *testing.B) {
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendString(dst[:0], "com.example.demo.DemoService")
	}
}
