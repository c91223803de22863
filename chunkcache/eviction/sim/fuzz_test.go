package sim

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzReadTrace feeds arbitrary bytes to every trace reader: each returns a trace or a
// wrapped ErrTraceFormat, never panics, and a trace it returns is consistent (dense
// ids, sizes > 0, per-request arrays as long as the requests).
func FuzzReadTrace(f *testing.F) {
	var og []byte
	og = AppendOracleGeneral(og, 1, 7, 100, -1)
	og = AppendOracleGeneral(og, 2, 7, 50, -1)
	for _, seed := range [][]byte{
		[]byte("a\nb\na\n"),
		[]byte("version,time,op,size,lbn\n1,2,2a,512,42\n1,3,2a,0,9\n"),
		[]byte("1,\"x,y\",3\n"),
		og,
		og[:30],
		[]byte(ChunkTraceHeader + "\nkey,size_bytes,cost,namespace,tokens\nk,10,2.5,ns,4\nk,11,2.5,ns,4\n"),
		[]byte(ChunkTraceHeader + "\ncost,key\n"),
	} {
		f.Add(seed, uint8(0))
		f.Add(seed, uint8(1))
		f.Add(seed, uint8(2))
		f.Add(seed, uint8(3))
	}
	csv := CSVParams{ObjIDCol: 5, ObjSizeCol: 4, TimeCol: 2}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		format := Formats()[int(which)%len(Formats())]
		tr, err := ReadTrace(bytes.NewReader(data), "fuzz", format, ReadOptions{CSV: csv, MaxRequests: 1 << 16})
		if err != nil {
			if !errors.Is(err, ErrTraceFormat) {
				t.Fatalf("%s: error %v does not wrap ErrTraceFormat", format, err)
			}
			return
		}
		keys, _ := tr.WorkingSet()
		for _, id := range tr.Requests {
			if int(id) >= keys {
				t.Fatalf("%s: id %d ≥ %d objects", format, id, keys)
			}
		}
		if tr.Sizes != nil && len(tr.Sizes) != keys || tr.Costs != nil && len(tr.Costs) != keys {
			t.Fatalf("%s: %d sizes, %d costs for %d objects", format, len(tr.Sizes), len(tr.Costs), keys)
		}
		if tr.ReqSizes != nil && len(tr.ReqSizes) != len(tr.Requests) || tr.ReqCosts != nil && len(tr.ReqCosts) != len(tr.Requests) {
			t.Fatalf("%s: per-request arrays do not match %d requests", format, len(tr.Requests))
		}
		for i, id := range tr.Requests {
			if tr.ReqSize(i, id) <= 0 || tr.ReqCost(i, id) < 0 {
				t.Fatalf("%s: request %d size %d cost %v", format, i, tr.ReqSize(i, id), tr.ReqCost(i, id))
			}
		}
	})
}

// FuzzParseCSVParams: the params parser never panics and names ErrTraceFormat.
func FuzzParseCSVParams(f *testing.F) {
	for _, s := range []string{"obj-id-col=5,obj-size-col=4,delimiter=,,has-header=true", "delimiter=\\t", "x", "obj_id_col=1, time_col=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseCSVParams(s)
		if err != nil {
			if !errors.Is(err, ErrTraceFormat) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if p.ObjIDCol < 1 {
			t.Fatalf("%q: obj-id-col %d", s, p.ObjIDCol)
		}
	})
}
