"""
microseq2seq.py - the original Transformer of "Attention Is All You Need": an encoder
that reads the whole English sentence, a decoder that writes Italian one word at a time,
and cross-attention joining them, trained from scratch in dependency-free Python.

The task is a small grammar generated in the file: "the black cat sees the small girl"
-> "il gatto nero vede la ragazza piccola". It holds the two phenomena that made
translation hard for word-by-word systems: reordering (the adjective moves after the
noun, so the alignment crosses) and agreement (the article and the adjective's ending
follow the noun's gender, which English does not mark). It trains on random sentences,
translates two held-out sets (random sentences, and sentences built around adjective-noun
pairs it never saw), compares with a word-by-word dictionary given the reordering for
free, and draws the cross-attention map: which English word each Italian word reads.
"""

import contextlib
import gc
import math
import operator
import random
import sys
import time

random.seed(42)

# === HYPERPARAMETERS ===
# The smallest Transformer that learns the grammar reliably: under 7,000 parameters.
D_MODEL = 16  # width of every word vector (the residual stream of both stacks)
N_HEAD = 2  # two heads of 8 dims: each attention layer asks two questions at once
HEAD_DIM = D_MODEL // N_HEAD
# One layer each: the encoder needs one round of self-attention to tell every English
# word which noun it belongs to; stacking more is repetition.
N_ENC_LAYER = N_DEC_LAYER = 1
# The MLP widens to 2x, not the paper's 4x: the grammar needs little per-word
# computation, and at 4x the MLP would be the biggest block of the graph.
D_MLP = 2 * D_MODEL
INIT_STD = 0.08  # initial weights ~ N(0, 0.08), as in microgpt: first guesses near uniform
# Word embeddings start at unit scale, like the sinusoids added to them (the paper gets
# the same by multiplying embeddings by sqrt(d_model)). At 0.08 the fixed position
# signal would drown out which word it is, and training stalls on a plateau.
EMBED_STD = 1.0
# Four sentence pairs per step: one pair per step is noisier and depends more on the seed.
BATCH_SIZE = 4
# 550 steps = 2,200 sentences, about 6% of the sentences the grammar can make outside
# the test sets: enough for both held-out sets to be translated almost perfectly.
NUM_STEPS = 550
# Adam, decayed linearly to 0, with microgpt's moment memories and twice its step size:
# the plateau before cross-attention finds the word being translated is escaped sooner.
LEARNING_RATE = 0.02
BETA1, BETA2, ADAM_EPS = 0.85, 0.99, 1e-8
NUM_TEST = 500  # sentences in each held-out set, never trained on
# These adjective-noun pairs never occur in training; every word in them does, in other
# pairs. A sentence containing one tests whether agreement was learned as a rule.
HELDOUT_PAIRS = [("red", "cat"), ("old", "girl"), ("white", "house"), ("new", "dog")]
MAX_LEN = 9  # no sentence of the grammar is longer than 7 words; the decoder stops at 9
LOG_CLIP = 1e-10  # Value.log computes log(max(x, 1e-10)): finite even for an underflow

# === TARGETS ===
# (metric, op, bound, baseline): the Transformer meets the bound, the baseline (measured
# in the same run) misses it. The baseline is a dictionary learned from the same training
# pairs, given the one reordering rule (adjective after noun): it cannot do agreement.
TARGETS = [
    # Greedy translations that match the reference word for word, on random held-out
    # sentences and on sentences built around adjective-noun pairs never trained on.
    ("exact_random", ">=", 0.95, "baseline_exact_random"),
    ("exact_compositional", ">=", 0.90, "baseline_exact_compositional"),
    # Noun phrases whose article and adjective agree with their noun, in those unseen
    # combinations: the rule English does not mark, so no dictionary can look it up.
    ("agreement_compositional", ">=", 0.98, "baseline_agreement_compositional"),
]

# === DATA ===
# A grammar small enough to write down. Every noun takes "il" (masculine) or "la"
# (feminine), and an adjective's ending follows the noun (nero / nera). Subtle: il / la are the articles
# before a single consonant, as every noun here starts; Italian says "lo" before s +
# consonant or z (lo zaino) and "l'" before a vowel (l'albero), which this grammar
# avoids by its choice of nouns. Real Italian puts piccolo, grande, vecchio and nuovo
# before the noun as often as after; here they always follow, a clean reordering rule.
NOUNS = {"cat": ("gatto", "m"), "dog": ("cane", "m"), "boy": ("ragazzo", "m"), "book": ("libro", "m"),
         "horse": ("cavallo", "m"), "girl": ("ragazza", "f"), "house": ("casa", "f"), "apple": ("mela", "f"),
         "woman": ("donna", "f"), "car": ("macchina", "f")}
ADJECTIVES = {"black": ("nero", "nera"), "small": ("piccolo", "piccola"), "big": ("grande", "grande"),
              "red": ("rosso", "rossa"), "old": ("vecchio", "vecchia"), "new": ("nuovo", "nuova"),
              "white": ("bianco", "bianca")}
VERBS = {"sees": "vede", "follows": "segue", "finds": "trova", "loves": "ama", "watches": "guarda", "takes": "prende"}
ARTICLES = {"m": "il", "f": "la"}
# Special tokens: padding (fills a source up to the batch's longest), start, end of sentence.
PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


def translate_phrase(noun, adjective):
    """One English noun phrase in Italian: article + noun (+ adjective, after it).

    >>> translate_phrase("girl", "small"), translate_phrase("cat", None)
    (['la', 'ragazza', 'piccola'], ['il', 'gatto'])
    """
    italian, gender = NOUNS[noun]
    words = [ARTICLES[gender], italian]
    if adjective:
        words.append(ADJECTIVES[adjective][0 if gender == "m" else 1])
    return words


def make_pair(subject, verb, obj):
    """(English words, Italian words) of "the (adj) noun verb the (adj) noun".

    subject and obj are (noun, adjective or None) pairs.
    >>> make_pair(("cat", "black"), "sees", ("girl", None))
    (['the', 'black', 'cat', 'sees', 'the', 'girl'], ['il', 'gatto', 'nero', 'vede', 'la', 'ragazza'])
    """
    english, italian = [], []
    for i, (noun, adjective) in enumerate((subject, obj)):
        english += ["the"] + ([adjective] if adjective else []) + [noun]
        italian += translate_phrase(noun, adjective)
        if i == 0:
            english.append(verb)
            italian.append(VERBS[verb])
    return english, italian


def has_heldout_pair(english):
    """True if an adjective directly before a noun forms one of HELDOUT_PAIRS."""
    return any((a, n) in HELDOUT_PAIRS for a, n in zip(english, english[1:]))


def prepare_data():
    """Every sentence the grammar makes, split into training pool and two test sets.

    Returns (train_pool, test_random, test_comp, vocab), each set a list of (English
    words, Italian words). Every sentence with a held-out adjective-noun pair is kept out
    of training; test_comp is drawn from them, test_random from the others.
    """
    phrases = [(n, a) for n in NOUNS for a in [None] + list(ADJECTIVES)]
    pairs = [make_pair(s, v, o) for s in phrases for v in VERBS for o in phrases]
    random.shuffle(pairs)
    compositional = [p for p in pairs if has_heldout_pair(p[0])]
    ordinary = [p for p in pairs if not has_heldout_pair(p[0])]
    test_comp, test_random, train_pool = compositional[:NUM_TEST], ordinary[:NUM_TEST], ordinary[NUM_TEST:]
    # One vocabulary for both languages (the words never collide), specials first.
    words = sorted({w for e, i in pairs for w in e + i})
    vocab = [PAD, BOS, EOS] + words
    return train_pool, test_random, test_comp, vocab


# === MODEL ===
# An encoder-decoder Transformer, as in the paper but pre-norm (RMSNorm before each
# sublayer, which trains without warm-up) and with no biases:
#
#   encoder, per English position:  x += self_attn(norm(x)) over ALL English positions
#                                   x += mlp(norm(x));        memory = norm(x)
#   decoder, per Italian position:  y += self_attn(norm(y)) over EARLIER Italian positions
#                                   y += cross_attn(norm(y)) over the memory
#                                   y += mlp(norm(y));        logits = lm_head(norm(y))
#
# One embedding table serves both languages (the vocabulary is shared), and the output
# layer lm_head is a separate matrix, as in microgpt. The special tokens come first in
# the vocabulary, so their ids are fixed.
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2


def positional_encoding(max_len, d_model):
    """The paper's fixed sinusoids: PE[pos][2i] = sin(pos * w_i), PE[pos][2i+1] = cos(pos * w_i),
    with w_i = 1 / 10000^(2i / d_model).

    Dimensions 0 and 1 turn fastest, 1 radian per position; the last pair 10000^((d-2)/d)
    times slower: near positions differ in the fast dimensions, far ones in the slow.
    PE[pos + k] is PE[pos] with each (sin, cos) pair rotated by k * w_i, the same at every
    pos, so "k words later" looks alike everywhere and attention can learn it once.

    >>> [round(v, 4) for v in positional_encoding(2, 4)[1]]
    [0.8415, 0.5403, 0.01, 1.0]
    """
    table = []
    for pos in range(max_len):
        row = []
        for i in range(0, d_model, 2):
            angle = pos / 10000 ** (i / d_model)
            row += [math.sin(angle), math.cos(angle)]
        table.append(row[:d_model])
    return table


def init_params(vocab_size):
    """All weight matrices as nested lists of Values, [rows = outputs][cols = inputs]."""

    def matrix(n_out, n_in, std=INIT_STD):
        return [[Value(random.gauss(0.0, std)) for _ in range(n_in)] for _ in range(n_out)]

    def attention_weights(prefix):
        # queries: what am I looking for? keys: what do I contain? values: what do I pass
        # on? wo mixes the heads' outputs back into the stream.
        return {f"{prefix}.{w}": matrix(D_MODEL, D_MODEL) for w in ("wq", "wk", "wv", "wo")}

    params = {"wte": matrix(vocab_size, D_MODEL, EMBED_STD), "lm_head": matrix(vocab_size, D_MODEL)}
    for layer in range(N_ENC_LAYER):
        params.update(attention_weights(f"enc{layer}.attn"))
        params[f"enc{layer}.mlp.fc1"] = matrix(D_MLP, D_MODEL)
        params[f"enc{layer}.mlp.fc2"] = matrix(D_MODEL, D_MLP)
    for layer in range(N_DEC_LAYER):
        params.update(attention_weights(f"dec{layer}.self"))
        params.update(attention_weights(f"dec{layer}.cross"))
        params[f"dec{layer}.mlp.fc1"] = matrix(D_MLP, D_MODEL)
        params[f"dec{layer}.mlp.fc2"] = matrix(D_MODEL, D_MLP)
    return params


def flatten(params):
    """Every parameter Value in one list, in a fixed order (the optimizer's view)."""
    return [p for mat in params.values() for row in mat for p in row]


def attention(q, keys, values, allowed):
    """Multi-head attention of one query over a list of positions, under a mask.

    A position that is not `allowed` gets weight exactly 0: it is left out of the softmax,
    which is what adding -infinity to its score does in a batched implementation. Returns
    the heads' outputs, concatenated, and each head's weights as floats (for the maps).
    """
    live = [t for t, ok in enumerate(allowed) if ok]
    out, maps = [], []
    for h in range(N_HEAD):
        lo, hi = h * HEAD_DIM, (h + 1) * HEAD_DIM
        # score_t = q . k_t / sqrt(head_dim), for the allowed positions only
        scores = [s * (1.0 / math.sqrt(HEAD_DIM)) for s in linear(q[lo:hi], [keys[t][lo:hi] for t in live])]
        weights = softmax(scores)
        # out_d = sum_t weight_t * v_t[d]: linear() over the columns of the values
        out.extend(linear(weights, [[values[t][d] for t in live] for d in range(lo, hi)]))
        row = [0.0] * len(allowed)
        for t, w in zip(live, weights):
            row[t] = w.data
        maps.append(row)
    return out, maps


def add(x, y):
    """The residual connection: a sublayer's output is added to its input."""
    return [a + b for a, b in zip(x, y)]


def mlp(x, prefix, params):
    """fc1 -> ReLU -> fc2: widen to D_MLP features, keep the positive ones, project back."""
    return linear([a.relu() for a in linear(x, params[prefix + ".mlp.fc1"])], params[prefix + ".mlp.fc2"])


def embed(token, pos, params, pe):
    """What the word is (its embedding) plus where it is (the fixed sinusoid, a constant)."""
    return [w + p for w, p in zip(params["wte"][token], pe[pos])]


def encode(src, params, pe):
    """The encoder's output ("memory"): one vector per position of a padded source.

    Bidirectional: every English word attends to every English word, before and after
    it, because translating "black" needs to know the noun that follows it. Padding is
    masked out as keys, so no real word reads it (and nothing downstream reads its outputs).
    """
    allowed = [tok != PAD_ID for tok in src]
    x = [embed(tok, pos, params, pe) for pos, tok in enumerate(src)]
    for layer in range(N_ENC_LAYER):
        a = f"enc{layer}.attn"
        h = [rmsnorm(xi) for xi in x]
        q = [linear(hi, params[a + ".wq"]) for hi in h]
        k = [linear(hi, params[a + ".wk"]) for hi in h]
        v = [linear(hi, params[a + ".wv"]) for hi in h]
        x = [add(xi, linear(attention(qi, k, v, allowed)[0], params[a + ".wo"])) for xi, qi in zip(x, q)]
        x = [add(xi, mlp(rmsnorm(xi), f"enc{layer}", params)) for xi in x]
    return [rmsnorm(xi) for xi in x]


def decoder_step(token, pos, cache, cross_kv, src_allowed, params, pe):
    """Logits for the word after `token` (at position `pos`), and the cross-attention map.

    Self-attention is causal: this step appends its key and value to `cache`, which holds
    only positions 0..pos, so no word can read a later one: the lower-triangular mask of
    a parallel implementation, by construction (as in microgpt). Cross-attention reads
    the encoder: its query from the Italian so far, its keys and values from the English
    (cross_kv), under the padding mask. Its weights are returned, one row per head.
    """
    x = embed(token, pos, params, pe)
    maps = []
    for layer in range(N_DEC_LAYER):
        s, c = f"dec{layer}.self", f"dec{layer}.cross"
        keys, values = cache[layer]
        h = rmsnorm(x)
        q = linear(h, params[s + ".wq"])
        keys.append(linear(h, params[s + ".wk"]))
        values.append(linear(h, params[s + ".wv"]))
        heads, _ = attention(q, keys, values, [True] * len(keys))
        x = add(x, linear(heads, params[s + ".wo"]))
        # --- cross-attention: which English words does this Italian position need? ---
        h = rmsnorm(x)
        q = linear(h, params[c + ".wq"])
        heads, maps = attention(q, cross_kv[layer][0], cross_kv[layer][1], src_allowed)
        x = add(x, linear(heads, params[c + ".wo"]))
        x = add(x, mlp(rmsnorm(x), f"dec{layer}", params))
    return linear(rmsnorm(x), params["lm_head"]), maps


def encode_source(src, params, pe):
    """All a decoder needs from one (padded) English source: each decoder layer's
    cross-attention keys and values, and the padding mask. They depend only on the
    English, so they are computed once per sentence and read at every decoding step."""
    memory = encode(src, params, pe)
    cross_kv = [tuple([linear(m, params[f"dec{layer}.cross.{w}"]) for m in memory] for w in ("wk", "wv"))
                for layer in range(N_DEC_LAYER)]
    return cross_kv, [t != PAD_ID for t in src]


# === TRAINING ===
# Teacher forcing: at every position the decoder is fed the REFERENCE's previous word,
# not its own guess, so every position of every sentence trains in one pass and an early
# mistake cannot derail the rest. At inference there is no reference: the decoder reads
# its own output (free-running), and the held-out sets are judged that way.


def batch_loss(batch, params, pe):
    """Mean cross-entropy over every Italian word (and the end token) of a batch.

    Sources are padded to the batch's longest, as a batched implementation must, and the
    encoder's mask keeps the padding out. Targets need none: each sentence's decoder stops
    at its own length, which is what a loss mask over padded targets computes.
    """
    width = max(len(src) for src, _ in batch)
    losses = []
    for src, tgt in batch:
        cross_kv, allowed = encode_source(src + [PAD_ID] * (width - len(src)), params, pe)
        cache = [([], []) for _ in range(N_DEC_LAYER)]  # the decoder's self-attention keys, values
        # input BOS y1 .. yn, predict y1 .. yn EOS
        for pos, (inp, out) in enumerate(zip([BOS_ID] + tgt, tgt + [EOS_ID])):
            logits, _ = decoder_step(inp, pos, cache, cross_kv, allowed, params, pe)
            losses.append(cross_entropy(logits, out))
    # The mean over words, so long and short batches move the weights equally per step.
    return sum(losses) * (1.0 / len(losses)), len(losses)


def train(params, pool, pe, num_steps, rng):
    """Adam on BATCH_SIZE random training pairs per step; returns losses and ms/step.

    Adam as in microgpt: running means of gradients (m) and squared gradients (v),
    bias-corrected by 1 - beta^t.
    """
    flat = flatten(params)
    m, v, losses = [0.0] * len(flat), [0.0] * len(flat), []
    start = time.perf_counter()
    with cycle_collector_paused():
        for step in range(num_steps):
            loss, _ = batch_loss(rng.sample(pool, BATCH_SIZE), params, pe)
            loss.backward()
            lr = LEARNING_RATE * (1 - step / num_steps)  # big steps first, fine-tuning last
            c1, c2 = 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)
            grads = [p.grad for p in flat]
            m = [BETA1 * m_i + (1 - BETA1) * g for m_i, g in zip(m, grads)]
            v = [BETA2 * v_i + (1 - BETA2) * g * g for v_i, g in zip(v, grads)]
            for p, m_i, v_i in zip(flat, m, v):
                # theta -= lr * m_hat / (sqrt(v_hat) + eps), with m_hat = m/c1, v_hat = v/c2
                p.data -= lr * (m_i / c1) / ((v_i / c2) ** 0.5 + ADAM_EPS)
                p.grad = 0.0  # backward() accumulates with +=: start the next step at 0
            losses.append(loss.data)
            recent = losses[-25:]
            progress(step + 1, num_steps, sum(recent) / len(recent), start, every=50)
    return losses, 1000 * (time.perf_counter() - start) / num_steps


# === INFERENCE ===
# The encoder runs once, then the decoder writes one word at a time, each step reading
# its own previous output. Graphs are built and dropped; no backward() runs here.


def greedy(source, params, pe):
    """Translate an encoded source (see encode_source) taking the likeliest word each step.

    Returns (target ids without EOS, cross-attention maps: one [head][source pos] per
    output word, the end token included).
    """
    (cross_kv, allowed), cache = source, [([], []) for _ in range(N_DEC_LAYER)]  # empty self-attention cache
    out, maps, token = [], [], BOS_ID
    for pos in range(MAX_LEN):
        logits, step_maps = decoder_step(token, pos, cache, cross_kv, allowed, params, pe)
        maps.append(step_maps)
        # the largest logit is the likeliest word (softmax keeps the order); ties: lowest id
        token = max(range(len(logits)), key=lambda t: logits[t].data)
        if token == EOS_ID:
            break
        out.append(token)
    return out, maps


# === ANALYSIS ===
# The baseline, and the measures of what was learned: agreement and alignment.


def dice_dictionary(pairs):
    """English word -> the Italian word most associated with it over training pairs.

    Association is the Dice coefficient over sentences, 2 c(e, i) / (c(e) + c(i)), where
    c counts the sentences a word (or both words) occurs in. It finds each noun's and
    verb's translation exactly; for "the" and for adjectives it must pick one gender's
    form, because English gives it nothing to choose by.

    >>> pairs = [(["the", "cat"], ["il", "gatto"]), (["the", "girl"], ["la", "ragazza"]), (["the", "car"], ["la", "macchina"])]
    >>> d = dice_dictionary(pairs)
    >>> d["cat"], d["girl"], d["the"]
    ('gatto', 'ragazza', 'la')

    Subtle: "la" scores 2*1/(1+2) = 0.67 with "girl", below "ragazza"'s 2*1/(1+1) = 1.0,
    only because "la" also occurs without "girl". Ties go to the alphabetically first word.
    """
    count, joint = {}, {}
    for english, italian in pairs:
        for w in set(english) | set(italian):
            count[w] = count.get(w, 0) + 1
        for e in set(english):
            for i in set(italian):
                joint[e, i] = joint.get((e, i), 0) + 1
    best = {}
    for (e, i), c in sorted(joint.items()):
        score = 2 * c / (count[e] + count[i])
        if score > best.get(e, ("", -1.0))[1]:
            best[e] = (i, score)
    return {e: i for e, (i, _) in best.items()}


# Which genders each Italian adjective form fits ("grande" fits both).
FORM_GENDERS = {w: {g for pair in ADJECTIVES.values() for g, x in zip("mf", pair) if x == w}
                for pair in ADJECTIVES.values() for w in pair}
GENDER_OF = dict(NOUNS.values())


def agreement(italian, reference):
    """(noun phrases that agree, noun phrases) of one translation, against its reference.

    Each side of the one verb is a phrase "article noun [adjective]". A phrase agrees when
    it has the reference phrase's noun and shape, and its article and adjective take that
    noun's gender. Comparing with the reference is what makes this a test: "il gatto vede
    il gatto", output for every sentence, agrees with itself but with none of the nouns
    it was asked to translate. A translation that does not parse scores (0, 2).

    >>> agreement("il gatto nera vede la ragazza".split(), "il gatto nero vede la ragazza".split())
    (1, 2)
    >>> agreement("il gatto vede il gatto".split(), "la casa vede la mela".split())
    (0, 2)
    """
    def noun_phrases(words):  # split at the one verb: [subject words, object words]
        verbs = [i for i, w in enumerate(words) if w in VERBS.values()]
        return [words[: verbs[0]], words[verbs[0] + 1 :]] if len(verbs) == 1 else None

    phrases, wanted = noun_phrases(italian), noun_phrases(reference)
    if phrases is None:
        return 0, 2
    good = 0
    for phrase, ref in zip(phrases, wanted):
        if len(phrase) != len(ref) or phrase[1] != ref[1]:
            continue
        gender = GENDER_OF[ref[1]]
        article_ok = phrase[0] == ARTICLES[gender]
        adjective_ok = len(phrase) == 2 or gender in FORM_GENDERS.get(phrase[2], set())
        good += article_ok and adjective_ok
    return good, 2


def agreement_rate(outputs, pairs):
    """The share of noun phrases that agree, over (output words, (English, reference)) pairs."""
    scores = [agreement(out, ref) for out, (_, ref) in zip(outputs, pairs)]
    return sum(a for a, _ in scores) / sum(n for _, n in scores)


def exact_match(outputs, pairs):
    """The share of outputs (lists of words) equal to their reference, word for word."""
    return sum(out == ref for out, (_, ref) in zip(outputs, pairs)) / len(pairs)


SHADES = " .:-=+*#%@"  # attention weight 0-0.1 .. 0.9-1.0, light to dark


def attention_map(source_words, output_words, maps):
    """An ASCII heat map of cross-attention, averaged over heads: one row per output
    word, one column per source word, darker characters for more weight.

    >>> for line in attention_map(["black", "cat"], ["gatto", "nero"], [[[0.25, 0.75]], [[1.0, 0.0]]]):
    ...     print(line)
               black   cat
        gatto    :::   ###
         nero    @@@
    """
    width = max(len(w) for w in source_words) + 1
    lines = [" " * 10 + "".join(f"{w:>{width}}" for w in source_words)]
    for word, heads in zip(output_words, maps):
        row = [sum(h[t] for h in heads) / len(heads) for t in range(len(source_words))]
        cells = "".join(f"{SHADES[min(9, int(w * 10))] * 3:>{width}}" for w in row)
        lines.append((f"{word:>9} " + cells).rstrip())
    return lines


def word_by_word(english, dictionary):
    """The baseline: each word through the dictionary, with each adjective moved after
    its noun, the one reordering rule Italian needs, given for free. What is left for it
    to get wrong is agreement: "the" and each adjective have one form in the dictionary.

    >>> word_by_word("the black cat".split(), {"the": "la", "black": "nero", "cat": "gatto"})
    ['la', 'gatto', 'nero']
    """
    words = list(english)
    for i in range(len(words) - 1):
        if words[i] in ADJECTIVES and words[i + 1] in NOUNS:
            words[i], words[i + 1] = words[i + 1], words[i]
    return [dictionary[w] for w in words]


def show_scores(label, prefix, outputs, test_random, test_comp):
    """Exact match on both held-out sets and agreement on the compositional one, for
    outputs = (translations of test_random, translations of test_comp); print three of each."""
    print(f"\n{label} (ok = matches the reference):")
    for (e, i), out in list(zip(test_random, outputs[0]))[:3] + list(zip(test_comp, outputs[1]))[:3]:
        print(f"  {' '.join(e):38} -> {' '.join(out):40} {'ok' if out == i else 'WRONG'}")
    scores = {
        f"{prefix}exact_random": exact_match(outputs[0], test_random),
        f"{prefix}exact_compositional": exact_match(outputs[1], test_comp),
        f"{prefix}agreement_compositional": agreement_rate(outputs[1], test_comp),
    }
    print("exact match: {:.1%} of random, {:.1%} of compositional sentences; agreement {:.1%} of compositional"
          " noun phrases".format(*scores.values()))
    return scores


def show_alignment(test_random, translations, maps):
    """The cross-attention map of one sentence, and which English word each Italian
    adjective and article reads most (summed over heads), over the random test set."""
    adjective_hits = adjectives = article_hits = articles = 0
    for (e, _), out, out_maps in zip(test_random, translations, maps):
        for i, (word, heads) in enumerate(zip(out, out_maps)):
            top = e[max(range(len(e)), key=lambda t: sum(h[t] for h in heads))]  # ties: leftmost
            if word in FORM_GENDERS:
                adjective_hits += top in ADJECTIVES and word in ADJECTIVES[top]
                adjectives += 1
            elif word in ARTICLES.values() and i + 1 < len(out):
                # il or la is decided by the gender of the noun that follows, and English
                # "the" carries none: does the article read that noun's English word?
                article_hits += top in NOUNS and NOUNS[top][0] == out[i + 1]
                articles += 1
    # the first held-out sentence with two adjectives: two crossings to see
    k = next(k for k, (e, _) in enumerate(test_random) if sum(w in ADJECTIVES for w in e) == 2)
    print("\ncross-attention, averaged over heads (rows: Italian written; columns: English read;")
    print(f"shades '{SHADES}' = weight 0-0.1 .. 0.9-1):")
    for line in attention_map(test_random[k][0] + [EOS], translations[k] + [EOS], maps[k]):
        print(line)
    print(f"{adjective_hits / adjectives:.1%} of {adjectives:,} Italian adjectives in the random test set read their English"
          f" adjective most;\n{article_hits / articles:.1%} of {articles:,} articles read their own noun's English word most"
          ' (its gender decides il or la; "the" carries none)')
    return {"alignment_share": adjective_hits / adjectives, "article_reads_noun": article_hits / articles}


def main():
    t0 = time.perf_counter()
    # --- data: every sentence of the grammar, then two held-out sets never trained on ---
    train_pool, test_random, test_comp, vocab = prepare_data()
    stoi = {w: i for i, w in enumerate(vocab)}
    print(f"grammar: {len(NOUNS)} nouns, {len(ADJECTIVES)} adjectives, {len(VERBS)} verbs; vocabulary {len(vocab)} words"
          " (both languages + 3 special tokens)")
    print(f"held out: {len(test_comp)} sentences containing an unseen pair ({', '.join(' '.join(p) for p in HELDOUT_PAIRS)})"
          f" and {len(test_random)} random others;\ntraining draws from the remaining {len(train_pool):,}")

    # --- baseline: a dictionary learned from the same training pairs, reordering given ---
    dictionary = dice_dictionary(train_pool)
    baseline = [[word_by_word(e, dictionary) for e, _ in pairs] for pairs in (test_random, test_comp)]
    metrics = show_scores("word-by-word baseline, adjective after noun", "baseline_", baseline, test_random, test_comp)

    # --- model and training, teacher-forced ---
    pe = positional_encoding(MAX_LEN, D_MODEL)
    params = init_params(len(vocab))
    print(f"\nmodel: {N_ENC_LAYER} encoder + {N_DEC_LAYER} decoder layer, {N_HEAD} heads, d_model {D_MODEL}: "
          f"{len(flatten(params)):,} parameters")
    print(f"training {NUM_STEPS:,} steps of {BATCH_SIZE} sentence pairs, teacher-forced")
    pool = [([stoi[w] for w in e] + [EOS_ID], [stoi[w] for w in i]) for e, i in train_pool]
    losses, ms_per_step = train(params, pool, pe, NUM_STEPS, random)
    print("\ntraining loss per word, mean of each 1/60 of the steps:")
    for line in loss_curve(losses, [("uniform over the vocabulary", math.log(len(vocab)))]):
        print(line)

    # --- inference: free-running greedy translation of both held-out sets ---
    with cycle_collector_paused():
        greedy_out = [[greedy(encode_source([stoi[w] for w in e] + [EOS_ID], params, pe), params, pe) for e, _ in pairs]
                      for pairs in (test_random, test_comp)]
    words = [[[vocab[t] for t in ids] for ids, _ in outs] for outs in greedy_out]
    metrics.update(show_scores("held-out translations, greedy", "", words, test_random, test_comp))

    # --- what cross-attention learned: which English word each Italian word reads ---
    metrics.update(show_alignment(test_random, words[0], [m for _, m in greedy_out[0]]))
    metrics.update(ms_per_step=ms_per_step, seconds=time.perf_counter() - t0)
    print(f"\n{NUM_STEPS} steps at {ms_per_step:.0f} ms/step; whole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection and explained in microgpt.py
# (tests/test_contract.py keeps the copies verbatim). Nothing below is about translation.


class Value:
    # __slots__: no per-object __dict__, so each Value is smaller and its attributes
    # are faster to reach; a training step creates thousands of Values.
    __slots__ = ("data", "grad", "_children", "_local_grads")

    def __init__(self, data, children=(), local_grads=()):
        self.data = data
        self.grad = 0.0
        self._children = children
        self._local_grads = local_grads

    # --- the primitives: each knows its own local derivative ---
    # d(a+b)/da = 1, d(a+b)/db = 1
    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    # d(a*b)/da = b, d(a*b)/db = a
    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    # d(a^k)/da = k * a^(k-1); k is a plain number, not a Value
    def __pow__(self, k):
        return Value(self.data**k, (self,), (k * self.data ** (k - 1),))

    # d(e^a)/da = e^a
    def exp(self):
        e = math.exp(self.data)
        return Value(e, (self,), (e,))

    # d(log a)/da = 1/a; below LOG_CLIP the clipped function is flat: slope 0
    def log(self):
        if self.data > LOG_CLIP:
            return Value(math.log(self.data), (self,), (1.0 / self.data,))
        return Value(math.log(LOG_CLIP), (self,), (0.0,))

    # slope 1 where a > 0, else 0
    def relu(self):
        return Value(max(0.0, self.data), (self,), (float(self.data > 0),))

    # d(tanh a)/da = 1 - tanh(a)^2
    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), (1.0 - t * t,))

    # --- derived operations: built from the primitives, so they need no derivative ---
    def __neg__(self):  # -a
        return self * -1.0

    def __radd__(self, other):  # other + a: Python calls this for 2.0 + Value
        return self + other

    def __sub__(self, other):  # a - other
        return self + (-other)

    def __rsub__(self, other):  # other - a
        return (-self) + other

    def __rmul__(self, other):  # other * a
        return self * other

    def __truediv__(self, other):  # a / other = a * other^-1
        return self * other**-1

    def __rtruediv__(self, other):  # other / a
        return self**-1 * other

    def __repr__(self):
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    def backward(self):
        """Fill .grad of every Value this one depends on with d(self)/d(that Value).

        Nodes must be visited parents-before-children so a node's gradient is complete
        before it is passed on: a reverse topological order. The sort is a depth-first
        search with an explicit stack of (node, iterator over its children), not
        recursion, so a deep graph cannot hit Python's recursion limit.
        """
        order, visited = [], {self}
        stack = [(self, iter(self._children))]
        while stack:
            node, children = stack[-1]
            for child in children:
                # Leaves (parameters, constants) have no children and nothing to pass
                # on, so they never enter `order`: their .grad is filled in by their
                # parents. About half of a linear layer's children are leaves.
                if child._children and child not in visited:
                    visited.add(child)
                    # Descend; this node's iterator resumes where it stopped.
                    stack.append((child, iter(child._children)))
                    break
            else:
                # Every child is already in `order`, so this node may follow them.
                # Reversed, `order` puts each node before its children.
                stack.pop()
                order.append(node)
        self.grad = 1.0
        for node in reversed(order):
            g = node.grad
            # A node with zero gradient (a ReLU that was off, say) passes on nothing.
            if g:
                # Chain rule: dLoss/dchild += dnode/dchild * dLoss/dnode. The += sums
                # the contributions of every path from the loss to the child.
                for child, local in zip(node._children, node._local_grads):
                    child.grad += local * g


# --- AUTOGRAD IN THIS SCRIPT ---
# Value above is microgpt.py's, character for character (docs/autograd-interface.md).
# Nothing added: the encoder, the decoder and cross-attention are built from Value's
# operations and the four fused ones.


def linear(x, w):
    """y_i = sum_j w[i][j] * x[j] for each row of w: one node per output.

    dy_i/dw[i][j] = x[j] and dy_i/dx[j] = w[i][j], so each output node's children
    are its weight row followed by x, with local gradients x.data then w.data.
    Built from primitives this would be 2n-1 nodes (n products, n-1 sums) per output.

    >>> linear([Value(1.0), Value(2.0)], [[Value(3.0), Value(4.0)]])[0].data
    11.0
    """
    xs = tuple(x)
    # Read the floats once: the local gradients are plain numbers, stored per node.
    xd = [v.data for v in xs]
    out = []
    for row in w:
        wd = [v.data for v in row]
        # sum(map(mul, ...)) is the dot product with its loop run inside C rather than
        # as Python bytecode; the same floats are added in the same order.
        out.append(Value(sum(map(operator.mul, wd, xd)), (*row, *xs), (*xd, *wd)))
    return out


def softmax(logits):
    """p_i = exp(z_i - max z) / sum_j exp(z_j - max z): one node per probability.

    Subtracting max z changes nothing mathematically (it cancels) but keeps exp() from
    overflowing at logits like 1000. The Jacobian is dp_i/dz_j = p_i * (1[i==j] - p_j).

    >>> [p.data for p in softmax([Value(0.0), Value(0.0)])]
    [0.5, 0.5]
    """
    zs = tuple(logits)
    m = max(z.data for z in zs)
    exps = [math.exp(z.data - m) for z in zs]
    total = sum(exps)
    probs = [e / total for e in exps]
    # Every probability depends on every logit (through the shared denominator),
    # so each output node has all n logits as children: n^2 local gradients in all.
    return [Value(p_i, zs, tuple([p_i * ((i == j) - p_j) for j, p_j in enumerate(probs)])) for i, p_i in enumerate(probs)]


def cross_entropy(logits, target):
    """loss = -log softmax(z)[target] = logsumexp(z) - z[target]: one node.

    dloss/dz_j = p_j - 1[j == target]: the predicted distribution minus the one-hot
    answer. Written as logsumexp it never takes the log of a probability, so it cannot
    hit log(0), and the max subtraction keeps exp() finite.

    >>> round(cross_entropy([Value(0.0), Value(0.0)], 1).data, 4)  # ln 2
    0.6931
    """
    zs = tuple(logits)
    m = max(z.data for z in zs)
    exps = [math.exp(z.data - m) for z in zs]
    total = sum(exps)
    # logsumexp(z) = m + log(sum exp(z - m)), the stable form of log(sum exp(z))
    loss = m + math.log(total) - zs[target].data
    return Value(loss, zs, tuple(e / total - (j == target) for j, e in enumerate(exps)))


def rmsnorm(x, eps=1e-5):
    """y_i = x_i / sqrt(mean(x^2) + eps): rescale the vector to unit root-mean-square.

    With r = (mean(x^2) + eps)^(-1/2): dy_i/dx_j = r * 1[i==j] - x_i * x_j * r^3 / n.
    Unlike LayerNorm there is no mean subtraction and (in this model) no learned gain.

    >>> [round(y.data, 3) for y in rmsnorm([Value(3.0), Value(4.0)])]
    [0.849, 1.131]
    """
    xs = tuple(x)
    xd = [v.data for v in xs]
    n = len(xd)
    r = (sum(a * a for a in xd) / n + eps) ** -0.5
    r3n = r**3 / n
    # Each output depends on every input through r: a full n x n Jacobian per call.
    out = []
    for i, a in enumerate(xd):
        local = tuple([(r if i == j else 0.0) - a * b * r3n for j, b in enumerate(xd)])
        out.append(Value(a * r, xs, local))
    return out


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


@contextlib.contextmanager
def cycle_collector_paused():
    """Pause Python's cycle-detecting garbage collector inside a with-block.

    A training step builds thousands of Values, each with two tuples, and drops them
    all at the end. The graph has no reference cycles (a node points only at its
    children), so reference counting alone frees it; the cycle collector would only
    rescan those objects again and again.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
