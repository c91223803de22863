package chunkcache

import "github.com/ragkv/ragkv/chunkcache/internal/kvblob"

type kvblobHeader = kvblob.Header
