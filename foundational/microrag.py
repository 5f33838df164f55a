"""
microrag.py - retrieval lets a model answer questions about facts it never saw in
training: BM25 over an inverted index finds the paragraph, and a small character-level
generator copies the answer out of it, one character at a time.

The knowledge base is 100 short paragraphs about invented countries (made-up capitals,
rivers, founders, populations: no prior knowledge could supply them). Thirty are held
out: they exist only in the index, as when the world changes after a model was trained.
On their questions the same trained generator reads what BM25 fetches, and what BM25
without term frequency (k1 = 0) fetches: its exact match follows the retriever's.

Attribution: BM25 is Robertson and Walker's Okapi weighting (Robertson et al., TREC-3,
1994) in the IDF form Lucene uses; retrieve-then-generate is Lewis et al. (2020),
"Retrieval-Augmented Generation for Knowledge-Intensive NLP Tasks"; the copy mechanism
is a pointer network (Vinyals et al., 2015; See et al., 2017), and its "find where my
last characters occur and copy what follows" feature is the induction head of Olsson
et al. (2022). This file is written from scratch for the no-magic collection.
"""

import math
import operator
import random
import re
import sys
import textwrap
import time

random.seed(42)

# === HYPERPARAMETERS ===
# 100 paragraphs: enough that BM25 must rank (several mention each country), few enough to print.
# The last 30 are held out: 30 x 4 facts x 2 phrasings = 240 questions (standard error <= ~3 points).
NUM_PARAGRAPHS, NUM_HELDOUT = 100, 30
KB_SEED = 7  # the knowledge base's own RNG: every seed of the model sees the same world
BM25_K1, BM25_B = 1.2, 0.75  # Lucene's defaults. k1 is the knob; b barely matters (paragraphs of similar length)
BM25_NAME = f"BM25, k1 = {BM25_K1:g}"  # how the output names the retriever with these knobs
EMBED_DIM = 8  # width of the query and sentence vectors: plenty to tell 4 relations apart
START_WIDTH = 4  # the start head reads the character at a position and the 3 before ("is K")
MATCH_WIDTH = 4  # the copy head matches the last 4 characters written: 4 pin a place in a 200-char passage
INIT_STD = 0.1  # initial weights ~ N(0, 0.1): the untrained pointer is nearly uniform
NUM_STEPS = 600  # one pair per step: one pass over the 560 training pairs, plus 40
LEARNING_RATE = 0.05  # Adam's step, decayed linearly to 0; 5x microgpt's: a plateau sooner
BETA1, BETA2, ADAM_EPS = 0.9, 0.99, 1e-8  # Adam's decay rates; eps keeps its division finite
STOP, MAX_ANSWER_LEN = ".", 14  # copying the "." after an answer says "done"; 14 is longer than any answer
LOG_CLIP, NUM_EXAMPLES_SHOWN = 1e-10, 6  # log(max(x, 1e-10)), never log(0); 6 examples show 4 relations

# === TARGETS ===
# (metric, op, bound, baseline) on the 240 held-out questions: the baseline must miss.
TARGETS = [
    ("bm25_top1", ">=", 0.90, "bm25_k1_0_top1"),  # retrieval: with k1 = 0 a neighbour's paragraph can win
    ("em_bm25", ">=", 0.80, "em_k1_0"),  # answers follow retrieval: the same generator reads what k1 = 0 fetched
    ("em_bm25", ">=", 0.80, "untrained_em_bm25"),  # training matters: the same pointer, untrained, on BM25's passages
]

# === DATA ===
# A synthetic world: each country's paragraph has an opener, four facts (one of two templates each)
# and a sentence naming a neighbour, a decoy for BM25. Every answer ends its sentence: STOP follows.
ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "th"]
NUCLEI = ["a", "e", "i", "o", "u", "ai", "ou"]
CODAS = ["", "", "n", "r", "s", "l"]
OPENERS = ["{name} is a small country.", "{name} is an old island nation.", "{name} lies far to the north."]
FACTS = {"capital": ["Its capital is {x}.", "The capital city of {name} is {x}."],
         "river": ["The main river of {name} is the {x}.", "{name} is crossed by the river {x}."],
         "founder": ["It was founded by {x}.", "The founder of {name} was {x}."],
         "population": ["Its population is {x}.", "The number of people living in {name} is {x}."]}
NEIGHBOURS = ["{name} borders {x}.", "Traders from {name} often visit {x}."]
QUESTIONS = {"capital": ["What is the capital of {name}?", "Which city is the capital of {name}?"],
             "river": ["Which river flows through {name}?", "What is the main river of {name}?"],
             "founder": ["Who founded {name}?", "Who was the founder of {name}?"],
             "population": ["How many people live in {name}?", "What is the population of {name}?"]}


def prepare_data():
    """(paragraphs, facts, train_q, heldout_q); a question is (question, answer, gold paragraph id),
    8 per paragraph. All invented names differ: no answer is right by chance, no gold is ambiguous."""
    rng, used = random.Random(KB_SEED), set()

    def fresh():  # a new pronounceable made-up word of 2-3 syllables: "Brouvel", "Kasi"
        while True:
            word = "".join(rng.choice(ONSETS) + rng.choice(NUCLEI) for _ in range(rng.choice([2, 2, 3])))
            word = (word + rng.choice(CODAS)).capitalize()
            if word not in used:
                used.add(word)
                return word
    countries, paragraphs, facts = [fresh() for _ in range(NUM_PARAGRAPHS)], [], []
    for i, name in enumerate(countries):
        fact = {"capital": fresh(), "river": fresh(), "founder": fresh(), "population": str(rng.randint(1000, 99999))}
        sentences = [rng.choice(FACTS[rel]).format(name=name, x=x) for rel, x in fact.items()]
        other = countries[rng.choice([j for j in range(NUM_PARAGRAPHS) if j != i])]
        sentences.append(rng.choice(NEIGHBOURS).format(name=name, x=other))
        rng.shuffle(sentences)  # "the capital is the 2nd sentence" is no shortcut to learn
        paragraphs.append(" ".join([rng.choice(OPENERS).format(name=name)] + sentences))
        facts.append({"country": name, **fact})
    questions = [[(tpl.format(name=f["country"]), f[rel], d) for rel, tpls in QUESTIONS.items() for tpl in tpls] for d, f in enumerate(facts)]
    return paragraphs, facts, sum(questions[:-NUM_HELDOUT], []), sum(questions[-NUM_HELDOUT:], [])


# === THE RETRIEVER ===
# BM25 has no weights at all: it counts. An inverted index maps each term to the paragraphs
# containing it, so a query touches only those. The score of paragraph d for query q:
#   score(q, d) = sum_t  IDF(t) * tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))
# - tf = count of t in d. The fraction rises with tf but saturates at k1 + 1: the 5th "capital" is
#   much less evidence than the 1st. At k1 = 0 it is exactly 1 for any tf > 0: a term counts once.
# - |d| / avgdl: a long paragraph contains more words by chance, so its tf counts for less
#   (b = 0: no discount; b = 1: tf divided by the relative length).
# - IDF(t) = ln(1 + (N - df + 0.5) / (df + 0.5)), df = paragraphs containing t: a word in every
#   paragraph ("the") is worth almost nothing, a rare name a lot; Lucene's "1 +" keeps it positive.
def tokenize(text):
    """Lowercase words and numbers; punctuation dropped.
    >>> tokenize("What is the capital of Brouvel? 4200 people.")
    ['what', 'is', 'the', 'capital', 'of', 'brouvel', '4200', 'people']
    """
    return re.findall(r"[a-z0-9]+", text.lower())


def build_index(docs):
    """The inverted index: {"postings": term -> {doc_id: tf}, "doc_len": [...], "avgdl": float}.
    >>> build_index(["a b a", "b c"])["postings"]
    {'a': {0: 2}, 'b': {0: 1, 1: 1}, 'c': {1: 1}}
    """
    postings, doc_len = {}, [len(tokenize(text)) for text in docs]
    for d, text in enumerate(docs):
        for t in tokenize(text):
            counts = postings.setdefault(t, {})
            counts[d] = counts.get(d, 0) + 1
    return {"postings": postings, "doc_len": doc_len, "avgdl": sum(doc_len) / len(doc_len)}


def idf(df, n_docs):
    """ln(1 + (N - df + 0.5) / (df + 0.5)); a term in every document keeps a little:
    >>> round(idf(3, 3), 6) == round(math.log(1 + 0.5 / 3.5), 6)
    True
    """
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def bm25_term(tf, df, n_docs, dl, avgdl, k1=BM25_K1, b=BM25_B):
    """One term's weight in one document (the formula above). Subtle: the saturation fraction is
    taken alone, then times IDF: at k1 = 0 it is tf / tf = 1.0 exactly, so exact ties stay ties in floats.
    >>> round(bm25_term(1, 1, 2, 3, 3, k1=1.2, b=0.75), 4)  # tf 1, average length: IDF * 1
    0.6931
    >>> bm25_term(3, 1, 2, 9, 3, k1=0.0) == idf(1, 2)  # k1 = 0: presence only, exactly
    True
    """
    return idf(df, n_docs) * (tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)))


def bm25_scores(query, index, k1=BM25_K1, b=BM25_B):
    """{doc_id: score} for the documents sharing a term with `query`. Each distinct term counts
    once, summed in sorted order: a set's order, and so a float sum's last bit, would follow the hash seed."""
    doc_len, avgdl, scores = index["doc_len"], index["avgdl"], {}
    for t in sorted(set(tokenize(query))):
        posting = index["postings"].get(t, {})
        for d, tf in posting.items():
            scores[d] = scores.get(d, 0.0) + bm25_term(tf, len(posting), len(doc_len), doc_len[d], avgdl, k1, b)
    return scores


def search(query, index, k=1, k1=BM25_K1, b=BM25_B):
    """The top-k (score, doc_id), best first; equal scores go to the lower doc id.
    >>> [d for _, d in search("b c", build_index(["a b a", "b c", "c c c a"]), k=2)]
    [1, 2]
    """
    ranked = sorted(bm25_scores(query, index, k1, b).items(), key=lambda kv: (-kv[1], kv[0]))
    return [(s, d) for d, s in ranked[:k]]


def show_retrieval(index, paragraphs, held_q):
    """The index, what k1 does to a term's weight, why k1 = 0 loses; returns (metrics, top1, rates)."""
    # the held-out country whose name is in the most paragraphs (its own, and neighbours')
    term = max((tokenize(q)[-1] for q, _, _ in held_q), key=lambda t: (len(index["postings"][t]), t))
    df, n, tfs = len(index["postings"][term]), len(paragraphs), (1, 2, 3, 5, 10)
    print(f"\ninverted index: {len(index['postings']):,} terms, {index['avgdl']:.1f} words per paragraph on average")
    print(f"  posting list of {term!r}: {index['postings'][term]}  (paragraph id: count)")
    print(f"k1 saturates term frequency: the weight of {term!r} (IDF {idf(df, n):.3f}) in an average-length paragraph")
    print("    tf          " + "".join(f"{tf:>7d}" for tf in tfs))
    for k1 in (0.0, 0.5, BM25_K1, 5.0):
        print(f"    k1 = {k1:<6g} " + "".join(f"{bm25_term(tf, df, n, index['avgdl'], index['avgdl'], k1):7.3f}" for tf in tfs))
    top1 = {"BM25, k1 = 0": [search(q, index, k1=0.0)[0][1] for q, _, _ in held_q]}
    top1 |= {BM25_NAME: [search(q, index)[0][1] for q, _, _ in held_q], "gold paragraph": [g for _, _, g in held_q]}
    rates = {name: sum(d == g for d, (_, _, g) in zip(ids, held_q)) / len(held_q) for name, ids in top1.items()}
    # the country asked about: named in most sentences of its own paragraph, once in a neighbour's
    own = [index["postings"][tokenize(q)[-1]][g] for q, _, g in held_q]
    other = [tf for q, _, g in held_q for d, tf in index["postings"][tokenize(q)[-1]].items() if d != g]
    # k1 = 0's exact ties are decided by the rule (the lower id wins), not by the retriever; with
    # ties split at random, the gold paragraph would win 1 / (number tied) of each tie it is in
    misses, ties, split = 0, 0, 0.0
    for (q, _, g), top in zip(held_q, top1["BM25, k1 = 0"]):
        scores = bm25_scores(q, index, k1=0.0)
        tied = [d for d, v in scores.items() if v == max(scores.values())]
        misses, ties = misses + (top != g), ties + (top != g and g in tied)
        split += (g in tied) / len(tied) / len(held_q)
    print(textwrap.fill(f"top-1 on the held-out questions: {BM25_NAME} {rates[BM25_NAME]:.1%}, k1 = 0 {rates['BM25, k1 = 0']:.1%}. The country"
                        f" asked about is named {sum(own) / len(own):.1f} times in its own paragraph, {sum(other) / len(other):.1f}"
                        f" in a neighbour's; k1 = 0 counts both once. Of its {misses} misses, {ties} are exact ties,"
                        " broken by the stated rule: equal scores go to the lower paragraph id (split at random,"
                        f" k1 = 0 would average {split:.1%}).", 96))
    return {"k1_0_tied_misses": ties}, top1, rates


# === THE GENERATOR ===
# The answer is in the passage; the model learns WHERE to read it (an MLP over [query; passage]
# could emit "Keltamo" only after training on it), so its output is attention over characters:
#   a_t(j) = softmax_j( s_t(j) )                 how much step t points at character j
#   P_t(c) = sum_{j : passage[j] == c} a_t(j)    the next character's distribution
# The score s_t(j) adds three learned signals:
# 1. relevance r(j) = q . k_sent(j): is j's sentence the one the question asks about?
#    q = mean of the question's word vectors (rows of W_q), k = mean of the sentence's
#    (rows of W_k): attention's query-key match, at word level ("founded" ~ "founder").
# 2. start head, at step 0 only: sum_o start[o][passage[j - o]], o = 0..3, a learned
#    score per (offset, character): "an upper-case letter after 'is '" starts an answer.
# 3. copy head, every step: sum_k match[k] * 1[passage[j - k] == written[-k]], k = 1..4,
#    where `written` is " " + the characters emitted so far. If the last characters
#    written are the ones just before j, j comes next: the induction head. After "Zou":
#      passage  ... f o u n d e d _ b y _ Z o u b r e l . ...     (_ = space)
#      written                          _ Z o u ^ j       (" " + "Zou")
#      k = 4, 3, 2, 1                   ^ ^ ^ ^ match the 4 characters before j = "b",
#      so the pointer's mass moves to "b"; then "Zoub" matches before "r", and so on.
#    At step 0, written = " ", so match[1] fires at every word start.
# No weight belongs to an answer: the generator works on countries it never trained on, and is
# helpless without the paragraph. Plain floats: as Values, a 200-way softmax would store 40,000 local gradients.
def make_tables(paragraphs, questions):
    """(vocab, alphabet): word -> row of W_q and W_k; character -> start head column (0 = before
    the passage). Subtle: held-out words get rows, but only training questions and their gold
    paragraphs move rows, and no held-out answer is in them (tested): those rows stay random."""
    words = sorted({w for text in paragraphs + [q for q, _, _ in questions] for w in tokenize(text)})
    return {w: i for i, w in enumerate(words)}, {c: i + 1 for i, c in enumerate(sorted(set("".join(paragraphs))))}


def init_params(vocab_size, alphabet_size, rng):
    """~ N(0, INIT_STD): W_q, W_k (a row per word), start (offset x character), match (per k)."""

    def matrix(rows, cols):
        return [[rng.gauss(0.0, INIT_STD) for _ in range(cols)] for _ in range(rows)]
    return {"W_q": matrix(vocab_size, EMBED_DIM), "W_k": matrix(vocab_size, EMBED_DIM),
            "start": matrix(START_WIDTH, alphabet_size + 1), "match": matrix(1, MATCH_WIDTH)[0]}


def encode_example(question, passage, vocab, alphabet):
    """What the generator reads, per (question, passage) pair; a sentence owns its closing ".", so an
    answer and its STOP share one relevance."""
    cols, positions = [alphabet[c] for c in passage], {}
    for j, c in enumerate(passage):
        positions.setdefault(c, []).append(j)  # character -> every j where it occurs
    return {"qids": [vocab[w] for w in tokenize(question) if w in vocab], "passage": passage, "positions": positions,
            "sent_of": [passage.count(".", 0, j) for j in range(len(passage))],  # the "."s before j
            "sent_words": [[vocab[w] for w in tokenize(s) if w in vocab] for s in passage.split(".")],
            # for each j, the start head's column at offsets o = 0..3 (0 before the passage)
            "start_cols": [[cols[j - o] if j >= o else 0 for o in range(START_WIDTH)] for j in range(len(cols))]}


def relevance(params, ex):
    """(q, keys, r): the question vector, one key per sentence, and r_s = q . k_s."""

    def mean_rows(matrix, ids):  # the mean of some rows; zeros for none
        return [sum(col) / len(ids) for col in zip(*(matrix[i] for i in ids))] or [0.0] * EMBED_DIM
    q = mean_rows(params["W_q"], ex["qids"])
    keys = [mean_rows(params["W_k"], words) for words in ex["sent_words"]]
    return q, keys, [sum(map(operator.mul, q, k)) for k in keys]


def copy_matches(ex, written):
    """[(k, every j where passage[j - k] == history[-k])] for k = 1..MATCH_WIDTH, where
    history = " " + written: each position i holding history[-k] makes j = i + k fire.
    >>> ex = {"passage": "ab ab", "positions": {"a": [0, 3], "b": [1, 4], " ": [2]}}
    >>> copy_matches(ex, "a")  # k = 1: after an "a"; k = 2: two after a space
    [(1, [1, 4]), (2, [4])]
    """
    history, n = " " + written, len(ex["passage"])
    return [(k, [i + k for i in ex["positions"].get(history[-k], ()) if i + k < n]) for k in range(1, min(MATCH_WIDTH, len(history)) + 1)]


def pointer(params, ex, r, written, step):
    """a_t = softmax_j(s_t(j)), s = relevance + (step 0 only) start head + copy head."""
    scores = [r[s] for s in ex["sent_of"]]
    if step == 0:
        for j, cols in enumerate(ex["start_cols"]):
            scores[j] += sum(params["start"][o][c] for o, c in enumerate(cols))
    for k, js in copy_matches(ex, written):
        for j in js:
            scores[j] += params["match"][k - 1]
    m = max(scores)  # the softmax as exp(s - max s) / sum, which cannot overflow
    e = [math.exp(v - m) for v in scores]
    total = sum(e)
    return [v / total for v in e]


# === TRAINING ===
# Loss: the mean of -log P_t(target_t) over the answer's characters and STOP, teacher forced (step
# t's `written` = the answer's first t characters). By hand, a = softmax(s), Y = positions of y:
#   L_t = -log P,   P = sum_{j in Y} a_j    =>    dL_t/ds_j = a_j - 1[j in Y] a_j / P
# (the softmax Jacobian summed over Y; for |Y| = 1, a - onehot), passed on to each input:
#   r_s        <- sum over j in sentence s      (every position of s carries r_s)
#   start[o][c] <- sum over j with passage[j-o] = c   (step 0 only)
#   match[k]   <- sum over j where the k-match fired
#   q <- sum_s g_r_s k_s,  k_s <- g_r_s q     (r_s = q . k_s)
#   W_q[w] <- g_q / |question words| per occurrence; W_k[w] <- g_k_s / |words of s|.
def zeros_like(params):
    """Zeros shaped like the parameters (a matrix or a vector per name)."""
    return {name: [[0.0] * len(row) for row in p] if isinstance(p[0], list) else [0.0] * len(p) for name, p in params.items()}


def example_loss_and_grads(params, ex, answer):
    """(mean loss over the answer's characters + STOP, gradients shaped like params)."""
    target = answer + STOP
    q, keys, r = relevance(params, ex)
    grads, g_r, loss, T = zeros_like(params), [0.0] * len(r), 0.0, len(target)
    for t, y in enumerate(target):
        written = target[:t]
        a = pointer(params, ex, r, written, t)
        hits = ex["positions"].get(y, ())
        p = sum(a[j] for j in hits)
        loss += -math.log(max(p, LOG_CLIP)) / T
        if p <= LOG_CLIP:  # log is clipped flat below 1e-10 (as Value.log): no gradient flows
            continue
        # dL/ds_j = (a_j - 1[j in Y] a_j / P) / T, the 1/T from the mean over steps
        g = [v / T for v in a]
        for j in hits:
            g[j] -= a[j] / p / T
        for j, s in enumerate(ex["sent_of"]):
            g_r[s] += g[j]
        if t == 0:
            for j, cols in enumerate(ex["start_cols"]):
                for o, c in enumerate(cols):
                    grads["start"][o][c] += g[j]
        for k, js in copy_matches(ex, written):
            grads["match"][k - 1] += sum(g[j] for j in js)
    g_q = [sum(g_r[s] * keys[s][d] for s in range(len(keys))) / max(1, len(ex["qids"])) for d in range(EMBED_DIM)]
    for w in ex["qids"]:
        grads["W_q"][w] = [a + b for a, b in zip(grads["W_q"][w], g_q)]
    for s, words in enumerate(ex["sent_words"]):
        for w in words:
            grads["W_k"][w] = [a + g_r[s] * b / len(words) for a, b in zip(grads["W_k"][w], q)]
    return loss, grads


def train(params, examples, num_steps):
    """Adam (as in microgpt), one (encoded example, answer) pair per step; returns the losses and ms/step."""
    m, v, losses, start = zeros_like(params), zeros_like(params), [], time.perf_counter()
    for step in range(num_steps):
        loss, grads = example_loss_and_grads(params, *examples[step % len(examples)])  # (example, answer)
        lr = LEARNING_RATE * (1 - step / num_steps)  # big steps first, fine-tuning last
        c1, c2 = 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)
        for name, p in params.items():
            # a vector is one row: wrap it, so matrices and vectors share one loop
            rows = zip(p, grads[name], m[name], v[name]) if isinstance(p[0], list) else [(p, grads[name], m[name], v[name])]
            for p_row, g_row, m_row, v_row in rows:
                for i, g in enumerate(g_row):
                    m_row[i] = BETA1 * m_row[i] + (1 - BETA1) * g
                    v_row[i] = BETA2 * v_row[i] + (1 - BETA2) * g * g
                    p_row[i] -= lr * (m_row[i] / c1) / ((v_row[i] / c2) ** 0.5 + ADAM_EPS)
        losses.append(loss)
        progress(step + 1, num_steps, sum(losses[-50:]) / len(losses[-50:]), start, every=250)
    return losses, 1000 * (time.perf_counter() - start) / num_steps


# === INFERENCE: ONE GENERATOR, THREE RETRIEVERS ===
def generate(params, ex):
    """Greedy decoding of one (question, passage) pair: the likeliest character is written and fed back."""
    r, written = relevance(params, ex)[2], ""
    for t in range(MAX_ANSWER_LEN):
        a = pointer(params, ex, r, written, t)
        p = {c: sum(a[j] for j in js) for c, js in ex["positions"].items()}  # P(c), from every j holding c
        c = max(sorted(p), key=p.get)  # over sorted characters: a tie breaks the same way every run
        if c == STOP:
            break
        written += c
    return written


def answer_all(params, questions, passage_ids, paragraphs, vocab, alphabet):
    """(exact-match rate, answers) of the generator reading paragraph passage_ids[i] for question i."""
    answers = [generate(params, encode_example(q, paragraphs[d], vocab, alphabet)) for (q, _, _), d in zip(questions, passage_ids)]
    return sum(a == ans for a, (_, ans, _) in zip(answers, questions)) / len(questions), answers


def show_answers(held_q, rates, ems, answers, untrained_em):
    """Exact match by retriever, beside top-1, and examples that read both retrievers' passages."""
    print(f"\nthe same trained generator on the {len(held_q)} held-out questions (countries never trained on):")
    print(f"  {'passage the generator reads':30} {'top-1':>7} {'exact match':>12}")
    for name in ems:
        print(f"  {name:30} {rates[name]:7.1%} {ems[name]:12.1%}")
    print(f"  {'untrained generator, BM25':30} {rates[BM25_NAME]:7.1%} {untrained_em:12.1%}")
    weak, bm25 = answers["BM25, k1 = 0"], answers[BM25_NAME]
    wrong = [i for i, (_, answer, _) in enumerate(held_q) if bm25[i] != answer]
    print(textwrap.fill(f"answers follow retrieval: a pointer can only copy what is in its passage. With BM25 (top-1"
                        f" {rates[BM25_NAME]:.0%}) its {len(wrong)} wrong answers are the generator's own: it copies from"
                        " the wrong place, as the last example shows.", 96))
    print("\nexamples (question, true answer: with BM25 k1 = 0 | with BM25; = right, x wrong):")
    # questions come 8 per country (4 relations x 2 phrasings): walk across both
    for i in [8 * c + 2 * (c % 4) + c % 2 for c in range(NUM_EXAMPLES_SHOWN)] + wrong[:1]:
        question, answer, _ = held_q[i]
        row = " | ".join(f"{x or '(empty)':>10} {'=' if x == answer else 'x'}" for x in (weak[i], bm25[i]))
        print(f"  {question:38} {answer:>9}: {row}")


def main():
    t0 = time.perf_counter()
    # --- data: a synthetic world, split by country; held-out countries are never trained on ---
    paragraphs, _, train_q, held_q = prepare_data()
    n_train = NUM_PARAGRAPHS - NUM_HELDOUT
    print(f"knowledge base: {len(paragraphs)} paragraphs about invented countries, e.g. paragraph 0:")
    print(textwrap.fill(paragraphs[0], 96, initial_indent="  ", subsequent_indent="  "))
    print(textwrap.fill(f"generator trains on questions about paragraphs 0-{n_train - 1} ({len(train_q)} pairs); paragraphs"
                        f" {n_train}-{NUM_PARAGRAPHS - 1} are held out ({len(held_q)} questions), present only in the index", 96))
    # --- the retriever: an inverted index, BM25's knob k1, and three retrievers compared ---
    index = build_index(paragraphs)
    metrics, top1, rates = show_retrieval(index, paragraphs, held_q)
    # --- the generator: untrained first, the baseline of the same size ---
    vocab, alphabet = make_tables(paragraphs, train_q + held_q)
    params = init_params(len(vocab), len(alphabet), random)
    num_params = sum(len(row) if isinstance(row, list) else 1 for p in params.values() for row in p)
    print(f"\ngenerator: {num_params:,} weights: W_q, W_k ({len(vocab)} words x {EMBED_DIM} each), start"
          f" ({START_WIDTH} offsets x {len(alphabet) + 1} characters), match ({MATCH_WIDTH})")
    held_examples = [(encode_example(q, paragraphs[g], vocab, alphabet), a) for q, a, g in held_q]
    untrained_loss = sum(example_loss_and_grads(params, ex, a)[0] for ex, a in held_examples) / len(held_q)
    untrained_em, _ = answer_all(params, held_q, top1[BM25_NAME], paragraphs, vocab, alphabet)
    # --- training: gold paragraphs of the training questions only ---
    train_examples = [(encode_example(q, paragraphs[g], vocab, alphabet), a) for q, a, g in train_q]
    random.shuffle(train_examples)
    print(f"\ntraining {NUM_STEPS:,} steps, one (question, gold paragraph) pair each")
    losses, ms_per_step = train(params, train_examples, NUM_STEPS)
    heldout_loss = sum(example_loss_and_grads(params, ex, a)[0] for ex, a in held_examples) / len(held_q)
    print("\ntraining loss, mean of each 1/60 of the steps; held-out: gold paragraphs, unseen countries")
    print("\n".join(loss_curve(losses, [("held-out", heldout_loss), ("untrained", untrained_loss)])))
    print("copy head weights (match of the last 1..4 written characters): " + ", ".join(f"{w:.2f}" for w in params["match"]))
    # --- inference: the same held-out questions, read from each retriever's passage ---
    runs = {name: answer_all(params, held_q, ids, paragraphs, vocab, alphabet) for name, ids in top1.items()}
    ems, answers = {name: em for name, (em, _) in runs.items()}, {name: a for name, (_, a) in runs.items()}
    show_answers(held_q, rates, ems, answers, untrained_em)

    metrics |= {"bm25_top1": rates[BM25_NAME], "bm25_k1_0_top1": rates["BM25, k1 = 0"], "em_bm25": ems[BM25_NAME]}
    metrics |= {"em_k1_0": ems["BM25, k1 = 0"], "em_gold": ems["gold paragraph"], "untrained_em_bm25": untrained_em}
    metrics |= {"heldout_loss": heldout_loss, "untrained_heldout_loss": untrained_loss, "num_params": num_params}
    metrics |= {"ms_per_step": ms_per_step, "seconds": time.perf_counter() - t0}
    print(f"\n{NUM_STEPS:,} steps at {ms_per_step:.1f} ms/step; whole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection (tests/test_contract.py keeps the copies
# verbatim) and explained in foundational/microgpt.py. Nothing below is about this
# script's algorithm; a first reading can stop at main().


def progress(step, total, loss, start, every):
    """Step, loss, elapsed and ETA: rewritten in place on a terminal, plain lines in a log.

    A carriage-return line that never ends becomes one endless line in a CI log, so
    when stdout is not a terminal we print a fresh line every `every` steps instead.
    """
    elapsed = time.perf_counter() - start
    eta = elapsed / step * (total - step)
    line = f"step {step:5,d}/{total:,} | loss {loss:.4f} | {elapsed:5.1f}s elapsed | eta {eta:5.1f}s"
    if sys.stdout.isatty():
        print("\r" + line, end="\n" if step == total else "", flush=True)
    elif step % every == 0 or step == total:
        print(line, flush=True)


def loss_curve(losses, marks=(), width=60, height=10):
    """An ASCII chart of a training curve, as a list of lines to print.

    Each of `width` columns is the mean loss over one equal slice of the steps (that
    averaging is the smoothing); each (label, value) in `marks`, such as the held-out
    loss or a baseline, is a dashed row labelled on the right. The axis fits the curve:
    a mark within half the curve's range of it widens the axis, a mark farther off is
    named on the top (^) or bottom (v) row instead of squashing the curve into one row.

    >>> for line in loss_curve([3.0, 2.0, 1.0, 1.0], [("baseline", 2.0), ("untrained", 9.0)], width=4, height=3):
    ...     print(line)
      3.000 |*    ^ untrained 9.000
      2.000 |-*-- baseline 2.000
      1.000 |  **
            +----
             step 1 .. 4
    """
    n = len(losses)
    width = min(width, n)
    columns = [losses[i * n // width : (i + 1) * n // width] for i in range(width)]
    ys = [sum(c) / len(c) for c in columns]
    reach = (max(ys) - min(ys)) / 2
    near = [v for _, v in marks if min(ys) - reach <= v <= max(ys) + reach]
    hi, lo = max(ys + near), min(ys + near)
    span = (hi - lo) or 1.0

    def row_of(v):
        return round((hi - v) / span * (height - 1))

    grid = [[" "] * width for _ in range(height)]
    labels = [""] * height
    for label, v in marks:
        if v > hi:
            labels[0] += f" ^ {label} {v:.3f}"
        elif v < lo:
            labels[-1] += f" v {label} {v:.3f}"
        else:
            grid[row_of(v)] = ["-"] * width
            labels[row_of(v)] += f" {label} {v:.3f}"
    for x, y in enumerate(ys):
        grid[row_of(y)][x] = "*"
    lines = [(f"{hi - r * span / (height - 1):7.3f} |" + "".join(grid[r]) + labels[r]).rstrip() for r in range(height)]
    return lines + [" " * 8 + "+" + "-" * width, " " * 9 + f"step 1 .. {n:,}"]


TARGET_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}


def check_target(metrics, metric, op, bound):
    """Does metrics[metric] meet `op bound`? Returns (passed, limit).

    A bound that is a string names another metric of the same run; a missing metric
    fails. The harness calls this same function on the same TARGETS table, for the
    method's metric and for its baseline's.

    >>> check_target({"loss": 2.30, "bigram_loss": 2.45}, "loss", "<", "bigram_loss")
    (True, 2.45)
    >>> check_target({"acc": 0.4}, "acc", ">=", 0.5)
    (False, 0.5)
    """
    value = metrics.get(metric)
    limit = metrics.get(bound) if isinstance(bound, str) else bound
    if value is None or limit is None:
        return False, limit
    return bool(TARGET_OPS[op](value, limit)), limit


def report_targets(metrics, targets):
    """Print one line per (metric, op, bound, baseline) target; return how many failed.

    A target passes when the method meets the bound AND the baseline, the simplest
    method that could plausibly meet it, measured in the same run, misses it: a bound
    that a trivial method also meets tests nothing.

    >>> report_targets({"loss": 2.3, "bigram": 2.45}, [("loss", "<=", 2.4, "bigram")])
    <BLANKLINE>
    === TARGETS: each against a baseline that must miss it ===
    PASS  loss = 2.3 (target <= 2.4) | baseline bigram = 2.45 misses
    0
    """

    def show(x):
        return f"{x:,}" if isinstance(x, int) else f"{x:,.4g}" if isinstance(x, float) else str(x)

    print("\n=== TARGETS: each against a baseline that must miss it ===")
    failed = 0
    for metric, op, bound, baseline in targets:
        ok, limit = check_target(metrics, metric, op, bound)
        baseline_ok, _ = check_target(metrics, baseline, op, bound)
        failed += not ok or baseline_ok
        against = f"{bound} = {show(limit)}" if isinstance(bound, str) else show(bound)
        print(
            f"{'PASS' if ok and not baseline_ok else 'MISS'}  {metric} = {show(metrics.get(metric))} (target {op} {against})"
            f" | baseline {baseline} = {show(metrics.get(baseline))} {'meets it too' if baseline_ok else 'misses'}"
        )
    return failed


if __name__ == "__main__":
    main()
