// The large-heap Node workload (examples/node-slow-server with HEAP_MB=200) written the way
// Node's startup snapshot needs it, for the `node-snapshot` peer of the benchmarks:
//
//   HEAP_MB=200 node --snapshot-blob app.blob --build-snapshot bench/peers/node-snapshot-app.js
//   PORT=3000 node --snapshot-blob app.blob
//
// The builder runs this file once and builds the whole state; V8 serializes the heap into
// the blob. A launch deserializes it and runs only the main function below, which starts
// the HTTP server. Node 20 snapshots a single script that may require built-in modules only,
// hence a CommonJS copy of the server's state-building code (everything between the
// constants and buildState() is copied verbatim from examples/node-slow-server/server.js).
// The benchmark checks that GET / answers the server's fingerprint, so a copy that drifts
// fails the run instead of measuring another workload.

const { createHash } = require("node:crypto");
const { startupSnapshot } = require("node:v8");

const HOST = "127.0.0.1";
const BASE_RECORD_COUNT = 300_000;
const WORDS_PER_RECORD = 8;
const VOCABULARY_SIZE = 20_000;
const CATEGORY_COUNT = 64;
const TOP_PER_TERM = 10;
// Each ballast object below (four small fields, one of them an 8-or-so character
// string) plus its slot in the holding array costs 88 bytes of V8 heap on x64.
const BALLAST_OBJECTS_PER_MB = Math.round((1024 * 1024) / 88);

function readNumberEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) {
    console.error(`${name} must be a non-negative number, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return value;
}

// mulberry32: a tiny, fast, seedable 32-bit PRNG.
function createRandom(seed) {
  let state = seed >>> 0;
  return function nextUint32() {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function buildVocabulary(nextUint32) {
  const syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "qu", "an", "el", "or", "um"];
  const words = [];
  const seen = new Set();
  while (words.length < VOCABULARY_SIZE) {
    const length = 2 + (nextUint32() % 3);
    let word = "";
    for (let i = 0; i < length; i++) word += syllables[nextUint32() % syllables.length];
    if (!seen.has(word)) {
      seen.add(word);
      words.push(word);
    }
  }
  return words;
}

// Records are objects (they are what a real service would hold), but their word lists
// live in one shared Uint16Array of vocabulary ids, WORDS_PER_RECORD per record.
function buildRecords(nextUint32, vocabulary, count) {
  const records = new Array(count);
  const wordIds = new Uint16Array(count * WORDS_PER_RECORD);
  const titleWords = new Array(WORDS_PER_RECORD);
  for (let id = 0; id < count; id++) {
    for (let w = 0; w < WORDS_PER_RECORD; w++) {
      // Skewed towards the start of the vocabulary, like natural text.
      const wordId = Math.min(nextUint32() % vocabulary.length, nextUint32() % vocabulary.length);
      wordIds[id * WORDS_PER_RECORD + w] = wordId;
      titleWords[w] = vocabulary[wordId];
    }
    records[id] = {
      id,
      title: titleWords.join(" "),
      score: nextUint32() % 1_000_000,
      priceCents: nextUint32() % 100_000,
      category: nextUint32() % CATEGORY_COUNT,
    };
  }
  return { records, wordIds };
}

// Sorts record ids by an integer key (ascending), ties broken by id, by packing
// key and id into one float64 so that the typed array's native numeric sort applies.
function sortIdsByKey(records, keyOf) {
  let idSpace = 1;
  while (idSpace < records.length) idSpace *= 2;
  const packed = new Float64Array(records.length);
  for (const record of records) packed[record.id] = keyOf(record) * idSpace + record.id;
  packed.sort();
  const ids = new Uint32Array(records.length);
  for (let i = 0; i < packed.length; i++) ids[i] = packed[i] % idSpace;
  return ids;
}

// An inverted index in compressed-sparse-row form: the record ids containing vocabulary
// word w are postings[offsets[w] .. offsets[w + 1]], ascending and without duplicates.
function buildIndex(vocabulary, records, wordIds) {
  const counts = new Uint32Array(vocabulary.length + 1);
  for (let i = 0; i < wordIds.length; i++) counts[wordIds[i] + 1]++;
  const offsets = new Uint32Array(vocabulary.length + 1);
  for (let w = 0; w < vocabulary.length; w++) offsets[w + 1] = offsets[w] + counts[w + 1];
  const fill = offsets.slice(0, vocabulary.length);
  const postings = new Uint32Array(wordIds.length);
  for (let i = 0; i < wordIds.length; i++) {
    const wordId = wordIds[i];
    const recordId = Math.floor(i / WORDS_PER_RECORD);
    if (fill[wordId] === offsets[wordId] || postings[fill[wordId] - 1] !== recordId) {
      postings[fill[wordId]++] = recordId;
    }
  }
  const termIds = new Map();
  for (let w = 0; w < vocabulary.length; w++) {
    if (fill[w] > offsets[w]) termIds.set(vocabulary[w], w);
  }
  const terms = [...termIds.keys()].sort();
  const byScore = sortIdsByKey(records, (record) => 999_999 - record.score);
  const byPrice = sortIdsByKey(records, (record) => record.priceCents);
  const topByTerm = buildTopByTerm(vocabulary.length, offsets, fill, postings, byScore);
  return { termIds, terms, offsets, fill, postings, byScore, byPrice, topByTerm };
}

// The TOP_PER_TERM best-scoring record ids for each vocabulary word (0xffffffff pads words
// with fewer records): what a search service would answer single-word queries from.
function buildTopByTerm(vocabularySize, offsets, fill, postings, byScore) {
  const rank = new Uint32Array(byScore.length);
  for (let i = 0; i < byScore.length; i++) rank[byScore[i]] = i;
  const top = new Uint32Array(vocabularySize * TOP_PER_TERM).fill(0xffffffff);
  for (let w = 0; w < vocabularySize; w++) {
    const base = w * TOP_PER_TERM;
    for (let p = offsets[w]; p < fill[w]; p++) {
      const r = rank[postings[p]];
      if (r >= top[base + TOP_PER_TERM - 1]) continue;
      let slot = base + TOP_PER_TERM - 1;
      while (slot > base && top[slot - 1] > r) {
        top[slot] = top[slot - 1];
        slot--;
      }
      top[slot] = r;
    }
    for (let slot = base; slot < base + TOP_PER_TERM && top[slot] !== 0xffffffff; slot++) {
      top[slot] = byScore[top[slot]];
    }
  }
  return top;
}

// HEAP_MB's extra live heap: many small objects, like a cache of parsed entities.
function buildBallast(nextUint32, heapMb) {
  const count = Math.round(heapMb * BALLAST_OBJECTS_PER_MB);
  const ballast = new Array(count);
  for (let i = 0; i < count; i++) {
    const n = nextUint32();
    ballast[i] = { id: i, weight: n >>> 2, group: n & 0xff, name: `n${i}` };
  }
  return ballast;
}

function fingerprintState(state) {
  const { records, index, ballast } = state;
  const hash = createHash("sha256");
  hash.update(`records=${records.length};terms=${index.terms.length};ballast=${ballast.length};`);
  for (const term of index.terms) {
    const w = index.termIds.get(term);
    hash.update(`${term}:${index.fill[w] - index.offsets[w]};`);
  }
  hash.update(index.postings);
  hash.update(index.byScore);
  hash.update(index.byPrice);
  hash.update(index.topByTerm);
  for (let i = 0; i < records.length; i += 101) hash.update(records[i].title);
  for (let i = 0; i < ballast.length; i += 997) hash.update(`${ballast[i].name}:${ballast[i].weight};`);
  return hash.digest("hex").slice(0, 16);
}

function buildState(workScale, heapMb) {
  const nextUint32 = createRandom(0x5eed);
  const vocabulary = buildVocabulary(nextUint32);
  const recordCount = Math.round(BASE_RECORD_COUNT * workScale);
  const { records, wordIds } = buildRecords(nextUint32, vocabulary, recordCount);
  const index = buildIndex(vocabulary, records, wordIds);
  const ballast = heapMb > 0 ? buildBallast(createRandom(0xba11a57), heapMb) : [];
  const state = { vocabulary, records, wordIds, index, ballast };
  return { ...state, fingerprint: fingerprintState(state) };
}

if (!startupSnapshot.isBuildingSnapshot()) {
  console.error("run with: node --snapshot-blob <blob> --build-snapshot node-snapshot-app.js");
  process.exit(2);
}

// Built once, at snapshot time, with the builder's WORK_SCALE and HEAP_MB.
const startedAt = Date.now();
const state = buildState(readNumberEnv("WORK_SCALE", 1), readNumberEnv("HEAP_MB", 0));

// Runs on every launch from the blob: the same server as node-slow-server's main(), minus
// the build. PORT is read here, from the launch's environment.
startupSnapshot.setDeserializeMainFunction(() => {
  // Required here, not at the top: Node 20's snapshot builder cannot load node:http.
  const { createServer } = require("node:http");
  const port = readNumberEnv("PORT", 3000);
  let readyAt = 0;
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/") {
      const body = JSON.stringify({
        pid: process.pid,
        fingerprint: state.fingerprint,
        startedAt,
        readyAt,
        requests,
      });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(body);
    } else if (req.method === "GET" && path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
    } else {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
    }
  });
  const shutdown = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
  server.listen(port, HOST, () => {
    readyAt = Date.now();
    console.log(`listening on http://${HOST}:${server.address().port}`);
  });
});
