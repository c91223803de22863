package retrieval

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ragkv/ragkv/retrieval/internal/ann"
	"github.com/ragkv/ragkv/retrieval/internal/lexical"
	"github.com/ragkv/ragkv/retrieval/internal/mmapfile"
	"github.com/ragkv/ragkv/retrieval/internal/pca"
)

// Shard directory files.
const (
	shardMetaFile     = "shard.json"
	shardPassagesFile = "passages.bin"
	shardPassageIndex = "passages.off"
	shardVectorsFile  = "vectors.f32"
	shardCodesFile    = "codes.bin"
	shardANNFile      = "ann.bin"
	shardLexicalDir   = "lexical"
)

// shardRef is a shard as the manifest lists it.
type shardRef struct {
	Dir      string `json:"dir"`
	Passages int    `json:"passages"`
	// ANN is set when the shard's dense search uses the approximate index.
	ANN bool `json:"ann,omitempty"`
	// Deleted lists the tombstoned ordinals (ascending): passages of documents deleted
	// or replaced after the shard was built. Searches skip them and collection
	// statistics exclude them; compaction drops them.
	Deleted []uint32 `json:"deleted,omitempty"`
}

type shardMeta struct {
	Passages int  `json:"passages"`
	Dim      int  `json:"dim"`
	CodeDim  int  `json:"code_dim"`
	Int8     bool `json:"int8"`
	// Compressed: codes.bin holds PCA-projected (and maybe quantized) vectors;
	// otherwise the scan reads the full vectors, held in RAM.
	Compressed bool `json:"compressed"`
	// ANN: ann.bin holds an approximate index over the projected (or full) float
	// vectors; the shard then keeps only that index in RAM and rescores from disk.
	ANN bool `json:"ann,omitempty"`
}

// shard is an open, immutable shard.
type shard struct {
	dir  string
	ref  shardRef
	meta shardMeta
	n    int
	lex  *lexical.Shard
	// The passage table (id and 32-byte SHA-256 of the text of every passage, in
	// ordinal order) and the offset of each record in it, memory-mapped.
	ptab, poff *mmapfile.File

	vecFile *mmapfile.File // full vectors, memory-mapped for rescoring when compressed or ANN
	// The scanned vectors, used in place in codesFile (loadCodes): the full vectors when
	// not compressed (and not ANN), else the compressed float or int8 codes (n × CodeDim).
	codesFile *mmapfile.File
	full      []float32
	codesF    []float32
	codesI8   []int8
	ann       *ann.Index
	// codesOnce loads the codes of an ANN shard when a search asks for an exact scan.
	codesOnce sync.Once
	codesErr  error

	users    atomic.Int32 // snapshots holding the shard
	obsolete atomic.Bool  // delete the directory when the last user is gone
}

// shardInput is what a shard is built from: passages sorted by id.
type shardInput struct {
	pids []string
	// BM25 indexes indexText(titles[i], texts[i]), built per passage as the shard is
	// indexed (the passages of a document share its title string: no copy of the
	// batch's text is held).
	titles, texts []string
	chunks        [][32]byte
	vecs          [][]float32 // full vectors, nil for lexical collections
}

// buildShard writes a shard into dir (which must not exist) and syncs it.
func buildShard(ctx context.Context, dir string, in *shardInput, proj *pca.Projection, quant *pca.Quantizer, annOpts *ann.Options) (shardMeta, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return shardMeta{}, fmt.Errorf("retrieval: %w", err)
	}
	n := len(in.pids)
	meta := shardMeta{Passages: n}
	lb, err := lexical.NewBuilder()
	if err != nil {
		return meta, err
	}
	for i := range in.texts {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return meta, err
			}
		}
		if err := lb.Add(indexText(in.titles[i], in.texts[i])); err != nil {
			return meta, err
		}
	}
	if _, err := lb.Write(ctx, filepath.Join(dir, shardLexicalDir)); err != nil {
		return meta, err
	}
	if err := writeSynced(filepath.Join(dir, shardPassageIndex), func(w io.Writer) error {
		var off uint64
		var b [8]byte
		for _, pid := range in.pids {
			binary.LittleEndian.PutUint64(b[:], off)
			if _, err := w.Write(b[:]); err != nil {
				return err
			}
			off += uint64(uvarintLen(uint64(len(pid))) + len(pid) + 32)
		}
		return nil
	}); err != nil {
		return meta, err
	}
	if err := writeSynced(filepath.Join(dir, shardPassagesFile), func(w io.Writer) error {
		var hdr [binary.MaxVarintLen64]byte
		for i, pid := range in.pids {
			k := binary.PutUvarint(hdr[:], uint64(len(pid)))
			if _, err := w.Write(hdr[:k]); err != nil {
				return err
			}
			if _, err := io.WriteString(w, pid); err != nil {
				return err
			}
			if _, err := w.Write(in.chunks[i][:]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return meta, err
	}
	if in.vecs != nil {
		meta.Dim = len(in.vecs[0])
		if err := writeSynced(filepath.Join(dir, shardVectorsFile), func(w io.Writer) error {
			return writeF32s(w, in.vecs)
		}); err != nil {
			return meta, err
		}
		if annOpts != nil && n >= annMinVectors {
			if err := buildANN(ctx, dir, in.vecs, proj, *annOpts); err != nil {
				return meta, err
			}
			meta.ANN = true
		}
		if proj != nil || quant != nil {
			meta.Compressed = true
			meta.CodeDim = meta.Dim
			if proj != nil {
				meta.CodeDim = proj.Out()
			}
			meta.Int8 = quant != nil
			err := writeSynced(filepath.Join(dir, shardCodesFile), func(w io.Writer) error {
				pv := make([]float32, meta.CodeDim)
				buf := make([]float32, meta.Dim)
				code := make([]int8, meta.CodeDim)
				cb := make([]byte, meta.CodeDim)
				for i, v := range in.vecs {
					if i%4096 == 0 {
						if err := ctx.Err(); err != nil {
							return err
						}
					}
					compress(v, proj, pv, buf)
					if quant != nil {
						quant.Encode(pv, code)
						for j, c := range code {
							cb[j] = byte(c)
						}
						if _, err := w.Write(cb); err != nil {
							return err
						}
						continue
					}
					if err := writeF32s(w, [][]float32{pv}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return meta, err
			}
		}
	}
	b, _ := json.Marshal(meta)
	if err := writeSynced(filepath.Join(dir, shardMetaFile), func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
		return meta, err
	}
	return meta, syncDir(dir)
}

// annMinVectors is the smallest shard that gets an ANN index (the IVF index needs a few
// hundred vectors to train on; smaller shards are scanned exactly).
const annMinVectors = 1024

// buildANN indexes the projected (or full) float vectors of a shard.
func buildANN(ctx context.Context, dir string, vecs [][]float32, proj *pca.Projection, opts ann.Options) error {
	d := len(vecs[0])
	if proj != nil {
		d = proj.Out()
	}
	flat := make([]float32, len(vecs)*d)
	buf := make([]float32, len(vecs[0]))
	for i, v := range vecs {
		compress(v, proj, flat[i*d:(i+1)*d], buf)
	}
	opts.Kind = ann.KindIVFPQ
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	ix, err := ann.Build(ctx, flat, d, opts)
	if err != nil {
		return fmt.Errorf("retrieval: build ANN index: %w", err)
	}
	return writeSynced(filepath.Join(dir, shardANNFile), func(w io.Writer) error {
		_, err := ix.WriteTo(w)
		return err
	})
}

// compress projects v (when proj is set) into dst, or copies it.
func compress(v []float32, proj *pca.Projection, dst, buf []float32) {
	if proj != nil {
		proj.Project(v, dst, buf)
		return
	}
	copy(dst, v)
}

func writeF32s(w io.Writer, vs [][]float32) error {
	var b []byte
	for _, v := range vs {
		b = b[:0]
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func writeSynced(path string, fill func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("retrieval: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := fill(bw); err != nil {
		_ = f.Close()
		return fmt.Errorf("retrieval: write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		_ = f.Close()
		return fmt.Errorf("retrieval: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("retrieval: sync %s: %w", path, err)
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("retrieval: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("retrieval: sync %s: %w", dir, err)
	}
	return nil
}

// openShard opens a built shard and checks it against the manifest.
func openShard(dir string, ref shardRef, m *manifest) (*shard, error) {
	b, err := os.ReadFile(filepath.Join(dir, shardMetaFile))
	if err != nil {
		return nil, fmt.Errorf("%w: shard %s: %v", ErrCorrupt, ref.Dir, err)
	}
	sh := &shard{dir: dir, ref: ref}
	if err := json.Unmarshal(b, &sh.meta); err != nil {
		return nil, fmt.Errorf("%w: shard %s: %v", ErrCorrupt, ref.Dir, err)
	}
	sh.n = sh.meta.Passages
	if sh.n != ref.Passages || (m.Dim > 0 && sh.meta.Dim != m.Dim) {
		return nil, fmt.Errorf("%w: shard %s holds %d passages of dim %d, manifest says %d of dim %d",
			ErrCorrupt, ref.Dir, sh.n, sh.meta.Dim, ref.Passages, m.Dim)
	}
	if err := sh.loadPassages(); err != nil {
		sh.close()
		return nil, err
	}
	sh.lex, err = lexical.Open(filepath.Join(dir, shardLexicalDir))
	if err != nil {
		sh.close()
		return nil, fmt.Errorf("%w: shard %s: %w", ErrCorrupt, ref.Dir, err)
	}
	if int(sh.lex.Stats().Docs) != sh.n {
		_ = sh.lex.Close()
		return nil, fmt.Errorf("%w: shard %s: lexical index holds %d passages, want %d", ErrCorrupt, ref.Dir, sh.lex.Stats().Docs, sh.n)
	}
	if err := sh.loadVectors(); err != nil {
		sh.close()
		return nil, err
	}
	sh.users.Store(1)
	return sh, nil
}

// loadPassages maps the passage table and its record offsets and checks that they
// agree (every record in bounds, contiguous, ids sorted).
func (sh *shard) loadPassages() error {
	var err error
	if sh.ptab, err = mmapfile.Open(filepath.Join(sh.dir, shardPassagesFile)); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if sh.poff, err = mmapfile.Open(filepath.Join(sh.dir, shardPassageIndex)); err != nil {
		return fmt.Errorf("%w: shard %s: %v (built by an older version: rebuild the collection)", ErrCorrupt, sh.ref.Dir, err)
	}
	b, offs := sh.ptab.Bytes(), sh.poff.Bytes()
	if len(offs) != 8*sh.n {
		return fmt.Errorf("%w: shard %s: %d passage offsets, want %d", ErrCorrupt, sh.ref.Dir, len(offs)/8, sh.n)
	}
	var at uint64
	prev := ""
	for i := 0; i < sh.n; i++ {
		if binary.LittleEndian.Uint64(offs[8*i:]) != at {
			return fmt.Errorf("%w: shard %s: passage offset %d disagrees with the table", ErrCorrupt, sh.ref.Dir, i)
		}
		l, k := binary.Uvarint(b[at:])
		if k <= 0 || uint64(len(b))-at-uint64(k) < l+32 {
			return fmt.Errorf("%w: shard %s: truncated passage table", ErrCorrupt, sh.ref.Dir)
		}
		pid := b[at+uint64(k) : at+uint64(k)+l]
		if i > 0 && string(pid) <= prev {
			return fmt.Errorf("%w: shard %s: passage ids out of order", ErrCorrupt, sh.ref.Dir)
		}
		prev = string(pid)
		at += uint64(k) + l + 32
	}
	if at != uint64(len(b)) {
		return fmt.Errorf("%w: shard %s: %d bytes after the last passage", ErrCorrupt, sh.ref.Dir, uint64(len(b))-at)
	}
	return nil
}

// record returns the id bytes and the chunk hash of passage ord (validated at open).
func (sh *shard) record(ord uint32) (pid, chunk []byte) {
	b := sh.ptab.Bytes()
	at := binary.LittleEndian.Uint64(sh.poff.Bytes()[8*int(ord):])
	l, k := binary.Uvarint(b[at:])
	s := at + uint64(k)
	return b[s : s+l], b[s+l : s+l+32]
}

// pid returns the id of passage ord.
func (sh *shard) pid(ord uint32) string {
	p, _ := sh.record(ord)
	return string(p)
}

// chunkBytes returns the SHA-256 of passage ord's text (do not modify).
func (sh *shard) chunkBytes(ord uint32) []byte {
	_, c := sh.record(ord)
	return c
}

// searchPid returns the first ordinal whose passage id is ≥ prefix (ids are sorted).
func (sh *shard) searchPid(prefix string) int {
	lo, hi := 0, sh.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if p, _ := sh.record(uint32(mid)); string(p) < prefix {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func (sh *shard) loadVectors() error {
	if sh.meta.Dim == 0 {
		return nil
	}
	if sh.meta.ANN {
		if err := sh.openVecFile(); err != nil {
			return err
		}
		af, err := os.Open(filepath.Join(sh.dir, shardANNFile))
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		defer af.Close()
		ix, err := ann.Read(bufio.NewReaderSize(af, 1<<20))
		if err != nil {
			return fmt.Errorf("%w: shard %s: %v", ErrCorrupt, sh.ref.Dir, err)
		}
		if ix.Len() != sh.n {
			return fmt.Errorf("%w: shard %s: ANN index holds %d vectors, want %d", ErrCorrupt, sh.ref.Dir, ix.Len(), sh.n)
		}
		ix.SetRescorer(sh)
		sh.ann = ix
		return nil
	}
	return sh.loadScanVectors()
}

// ensureCodes loads the scan codes of an ANN shard (for exact-scan requests).
func (sh *shard) ensureCodes() error {
	if sh.ann == nil {
		return nil
	}
	sh.codesOnce.Do(func() { sh.codesErr = sh.loadCodes() })
	return sh.codesErr
}

// Rescore implements ann.Rescorer with the full vectors on disk (memory-mapped).
func (sh *shard) Rescore(query []float32, ids []int32, scores []float32) {
	for i, id := range ids {
		if len(query) != sh.meta.Dim || id < 0 || int(id) >= sh.n {
			scores[i] = float32(math.Inf(-1))
			continue
		}
		scores[i] = dotLE(query, sh.vecBytes(uint32(id)))
	}
}

// vecBytes returns the little-endian float32 bytes of passage ord's full vector.
func (sh *shard) vecBytes(ord uint32) []byte {
	d := 4 * sh.meta.Dim
	return sh.vecFile.Bytes()[int(ord)*d : (int(ord)+1)*d]
}

// vecScratch is the buffer of one full vector decoded from the mapped file.
type vecScratch struct{ v []float32 }

var vecScratchPool = sync.Pool{New: func() any { return new(vecScratch) }}

// nativeLE: this machine stores float32 little-endian, as the vector files do, so a
// mapped vector can be used in place.
var nativeLE = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// dotLE is the inner product of q with a vector stored as little-endian float32 bytes
// (pca.DotF32 on the vector: the same float32 as on a vector in memory). On a
// little-endian machine the mapped bytes (4-byte aligned: the mapping is page-aligned
// and vectors are whole float32 rows) are used in place.
func dotLE(q []float32, b []byte) float32 {
	if nativeLE && len(b) >= 4*len(q) && len(q) > 0 && uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
		return pca.DotF32(q, unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(q)))
	}
	sc := vecScratchPool.Get().(*vecScratch)
	if cap(sc.v) < len(q) {
		sc.v = make([]float32, len(q))
	}
	v := sc.v[:len(q)]
	for j := range v {
		v[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
	}
	s := pca.DotF32(q, v)
	vecScratchPool.Put(sc)
	return s
}

// loadScanVectors prepares a shard searched by scanning: compressed codes in RAM with
// the full vectors on disk for rescoring, or the full vectors in RAM.
func (sh *shard) loadScanVectors() error {
	if sh.meta.Compressed {
		if err := sh.openVecFile(); err != nil {
			return err
		}
	}
	return sh.loadCodes()
}

// openVecFile maps the full vectors (rescoring reads them from the page cache).
func (sh *shard) openVecFile() error {
	f, err := mmapfile.Open(filepath.Join(sh.dir, shardVectorsFile))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if f.Len() != 4*sh.n*sh.meta.Dim {
		_ = f.Close()
		return fmt.Errorf("%w: shard %s: %s has the wrong size", ErrCorrupt, sh.ref.Dir, shardVectorsFile)
	}
	sh.vecFile = f
	return nil
}

// loadCodes maps the compressed codes (full vectors when uncompressed) of the shard's
// dense scan. They are used in place from the page cache (file-backed memory the kernel
// can reclaim, not the process's heap); only a big-endian machine, or one that cannot
// map files, decodes a float copy into RAM.
func (sh *shard) loadCodes() error {
	name, want := shardCodesFile, sh.n*sh.meta.CodeDim
	switch {
	case !sh.meta.Compressed:
		name, want = shardVectorsFile, 4*sh.n*sh.meta.Dim
	case !sh.meta.Int8:
		want *= 4
	}
	path := filepath.Join(sh.dir, name)
	if sh.meta.Int8 || nativeLE {
		var b []byte
		if !sh.meta.Compressed && sh.vecFile != nil {
			b = sh.vecFile.Bytes() // an ANN shard has its full vectors mapped (and checked) already
		} else {
			f, err := mmapfile.Open(path)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			if b = f.Bytes(); len(b) != want {
				_ = f.Close()
				return fmt.Errorf("%w: shard %s: %s holds %d bytes, want %d", ErrCorrupt, sh.ref.Dir, name, len(b), want)
			}
			sh.codesFile = f
		}
		if len(b) == 0 {
			return nil
		}
		switch {
		case !sh.meta.Compressed:
			sh.full = unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
		case sh.meta.Int8:
			sh.codesI8 = unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), len(b))
		default:
			sh.codesF = unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
		}
		return nil
	}
	v, err := readF32File(path, want/4)
	if err != nil {
		return err
	}
	if sh.meta.Compressed {
		sh.codesF = v
	} else {
		sh.full = v
	}
	return nil
}

func readF32File(path string, n int) ([]float32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if len(b) != 4*n {
		return nil, fmt.Errorf("%w: %s holds %d bytes, want %d", ErrCorrupt, path, len(b), 4*n)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}

// denseRAMBytes is what the dense search keeps in memory (the ANN index of an ANN
// shard, else the scanned codes, mapped or in RAM).
func (sh *shard) denseRAMBytes() float64 {
	if sh.ann != nil {
		return sh.ann.BytesPerVector() * float64(sh.n)
	}
	return float64(4*len(sh.full) + 4*len(sh.codesF) + len(sh.codesI8))
}

// chunkID is the ChunkID of passage ord (the hex of its stored SHA-256).
func (sh *shard) chunkID(ord uint32) string {
	return hex.EncodeToString(sh.chunkBytes(ord))
}

// scanTop returns the r best live passages by compressed score (for int8 codes q holds the
// quantizer's query weights), best first, ties by ordinal (= passage id order).
func (sh *shard) scanTop(q []float32, r int, dst []cand, si int32, dead deadSet) []cand {
	h := candHeap(dst[:0])
	d := sh.meta.CodeDim
	if !sh.meta.Compressed {
		d = sh.meta.Dim
	}
	for i := 0; i < sh.n; i++ {
		if dead != nil && dead.has(uint32(i)) {
			continue
		}
		var s float32
		switch {
		case sh.codesI8 != nil:
			s = pca.DotI8(q, sh.codesI8[i*d:(i+1)*d])
		case sh.codesF != nil:
			s = pca.DotF32(q, sh.codesF[i*d:(i+1)*d])
		default:
			s = pca.DotF32(q, sh.full[i*d:(i+1)*d])
		}
		c := cand{shard: si, ord: uint32(i), score: float64(s)}
		if len(h) < r {
			h.push(c)
		} else if worseInShard(h[0], c) {
			h[0] = c
			h.fixRoot()
		}
	}
	out := []cand(h)
	sortInShard(out)
	return out
}

// fullScores writes the full-vector inner product of q with each listed passage.
func (sh *shard) fullScores(q []float32, ords []uint32, out []float64) error {
	d := sh.meta.Dim
	for i, o := range ords {
		if int(o) >= sh.n {
			return fmt.Errorf("%w: shard %s: ordinal %d of %d", ErrCorrupt, sh.ref.Dir, o, sh.n)
		}
		if sh.full != nil {
			out[i] = float64(pca.DotF32(q, sh.full[int(o)*d:(int(o)+1)*d]))
		} else {
			out[i] = float64(dotLE(q, sh.vecBytes(o)))
		}
	}
	return nil
}

func (sh *shard) unref() {
	if sh.users.Add(-1) == 0 {
		sh.close()
		if sh.obsolete.Load() {
			_ = os.RemoveAll(sh.dir)
		}
	}
}

func (sh *shard) close() {
	if sh.lex != nil {
		_ = sh.lex.Close()
	}
	_ = sh.ptab.Close()
	_ = sh.poff.Close()
	if sh.vecFile != nil {
		_ = sh.vecFile.Close()
	}
	if sh.codesFile != nil {
		_ = sh.codesFile.Close()
	}
}

// cand is a candidate passage: shard index, ordinal in the shard, score.
type cand struct {
	shard int32
	ord   uint32
	score float64
}

// worseInShard orders candidates of one shard: lower score is worse; on equal scores
// the larger ordinal (later passage id) is worse.
func worseInShard(a, b cand) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	return a.ord > b.ord
}

// candHeap is a min-heap on worseInShard (its root is the worst kept candidate).
type candHeap []cand

// push adds c.
func (h *candHeap) push(c cand) {
	*h = append(*h, c)
	hh := *h
	i := len(hh) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !worseInShard(hh[i], hh[p]) {
			break
		}
		hh[i], hh[p] = hh[p], hh[i]
		i = p
	}
}

// fixRoot restores the heap after its root was replaced.
func (h *candHeap) fixRoot() {
	hh := *h
	i := 0
	for {
		l := 2*i + 1
		if l >= len(hh) {
			return
		}
		m := l
		if r := l + 1; r < len(hh) && worseInShard(hh[r], hh[l]) {
			m = r
		}
		if !worseInShard(hh[m], hh[i]) {
			return
		}
		hh[i], hh[m] = hh[m], hh[i]
		i = m
	}
}

func sortInShard(cs []cand) {
	slices.SortFunc(cs, func(a, b cand) int {
		if worseInShard(b, a) {
			return -1
		}
		if worseInShard(a, b) {
			return 1
		}
		return 0
	})
}
