"""Real-data loaders on small fixture files written here in the exact public layouts:
ml-100k (tab / pipe, latin-1), ml-1m ("::", latin-1) and Taobao (CSV with header, the real
user_profile header's trailing space included). Expected counts are worked out by hand."""

from pathlib import Path

import numpy as np
import pytest

from oneranker.loaders import load_movielens, load_taobao
from oneranker.schema import AD, CLICK, CONVERSION, IMPRESSION, ORGANIC, VIEW, DataError

MONDAY_13H = 4 * 86400 + 13 * 3600   # 5 Jan 1970 13:00 UTC (1 Jan 1970 was a Thursday)


# ============================================================================ fixture writers
def _write(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes("".join(line + "\n" for line in lines).encode(encoding))
    return path


def replace_line(path: Path, number: int, text: str) -> None:
    """Overwrite the 1-based line ``number`` of a fixture file (latin-1 round-trips any bytes)."""
    lines = path.read_bytes().decode("latin-1").splitlines()
    lines[number - 1] = text
    _write(path, lines, "latin-1")


# (user, movie, rating, timestamp), deliberately not in time order. User 9 has only 2 ratings;
# user 2 rates movies 50 and 60 in the same second (file order decides).
ML_RATINGS = [
    (7, 30, 5, 300), (2, 10, 4, 50), (7, 10, 3, 100), (4, 10, 5, MONDAY_13H), (9, 10, 1, 10),
    (7, 20, 4, 200), (2, 50, 2, 60), (4, 20, 5, MONDAY_13H + 1), (2, 60, 5, 60), (4, 30, 4, MONDAY_13H + 2),
    (9, 20, 2, 20), (4, 50, 3, MONDAY_13H + 3), (7, 40, 1, 400), (4, 70, 2, MONDAY_13H + 4),
]
ML_MOVIE_IDS = [20, 10, 30, 40, 50, 60, 70, 80]     # file order; dense ids follow the sorted raw ids
ML_N_REQUESTS, ML_N_CONVERSIONS = 12, 7             # users 2, 4, 7: 3 + 5 + 4 ratings; 7 ratings >= 4


def write_ml100k(folder: Path, users: bool = False) -> Path:
    genre_of = {10: (1, 5), 20: (8,), 30: (0,), 40: (16, 17), 50: (5, 14), 60: (8,), 70: (11,), 80: (3, 4)}
    items = []
    for movie in ML_MOVIE_IDS:
        flags = "|".join("1" if g in genre_of[movie] else "0" for g in range(19))
        title, date = ("Amélie (2001)", "01-Jan-2001") if movie == 50 else (f"Movie {movie} (1995)", f"0{movie % 9 + 1}-Jan-19{movie}")
        date = "" if movie == 40 else date     # the real u.item has a movie without a release date
        items.append(f"{movie}|{title}|{date}||http://us.imdb.com/M/title-exact?{movie}|{flags}")
    _write(folder / "u.item", items, "latin-1")
    _write(folder / "u.data", [f"{u}\t{m}\t{r}\t{t}" for u, m, r, t in ML_RATINGS])
    if users:
        _write(folder / "u.user", ["2|17|M|student|85711", "4|30|F|writer|94043", "7|60|M|other|32067",
                                   "9|30|F|writer|15213"])
    return folder


def write_ml1m(folder: Path, users: bool = True) -> Path:
    genres = {10: "Animation|Children's|Comedy", 20: "Drama", 30: "Comedy|Romance", 40: "Action|Thriller",
              50: "Comedy", 60: "Drama|War", 70: "Horror", 80: "Sci-Fi"}
    titles = {movie: f"Movie {movie} ({1900 + movie})" for movie in ML_MOVIE_IDS}
    titles[30], titles[40] = "Amélie (2001)", "Untitled without a year"
    _write(folder / "movies.dat", [f"{m}::{titles[m]}::{genres[m]}" for m in ML_MOVIE_IDS], "latin-1")
    _write(folder / "ratings.dat", [f"{u}::{m}::{r}::{t}" for u, m, r, t in ML_RATINGS])
    if users:
        _write(folder / "users.dat", ["2::F::1::10::48067", "4::M::56::16::70072", "7::M::25::15::55117",
                                      "9::F::25::15::02460"])
    return folder


TAOBAO_ADS = ["adgroup_id,cate_id,campaign_id,customer,brand,price",
              "101,7,1,1,11,10.0", "102,8,2,1,NULL,25.5", "103,9,3,2,12,3.0",
              "104,7,4,3,13,100.0", "105,9,5,3,NULL,8.0", "106,5,6,4,14,1.0"]
A, B = "430548_1007", "430539_1007"   # pids; sorted, B is context value 0 and A value 1
TAOBAO_SAMPLES = ["user,time_stamp,adgroup_id,pid,nonclk,clk",
                  f"1,1000,101,{A},0,1", f"1,1000,102,{A},1,0",       # user 1, request 1: two slots
                  f"2,1500,103,{A},1,0",
                  f"2,4000,101,{A},1,0", f"2,4000,102,{A},1,0",       # user 2's last request, early in the file
                  f"1,2000,103,{A},0,1",
                  f"2,2500,105,{B},0,1",
                  f"1,3000,101,{B},1,0", f"1,3000,104,{A},0,1",       # same second, two pids: two requests
                  f"3,3200,101,{A},1,0", f"3,5000,102,{A},0,1"]       # user 3: 2 requests, skipped
TAOBAO_PROFILE = ["userid,cms_segid,cms_group_id,final_gender_code,age_level,pvalue_level,shopping_level,"
                  "occupation,new_user_class_level ",                 # the real header's trailing space
                  "1,0,5,2,5,,3,0,3", "2,0,2,1,2,2,3,0,", "3,5,8,2,3,1,2,1,4"]
TAOBAO_BEHAVIOUR = ["user,time_stamp,btag,cate,brand",
                    "1,500,pv,7,11", "1,1500,pv,9,12",
                    "1,4600,buy,7,11",             # within 72 h of user 1's clicks on cate 7 at 1000 and 3000
                    "2,2000,cart,8,NULL",
                    "2,261701,buy,9,12",           # 72 h + 1 s after user 2's click on cate 9 at 2500: too late
                    "3,100,fav,5,14"]


def write_taobao(folder: Path, behaviour: bool = True) -> Path:
    _write(folder / "ad_feature.csv", TAOBAO_ADS)
    _write(folder / "raw_sample.csv", TAOBAO_SAMPLES)
    _write(folder / "user_profile.csv", TAOBAO_PROFILE)
    if behaviour:
        _write(folder / "behavior_log.csv", TAOBAO_BEHAVIOUR)
    return folder


def _user_tokens(logs, u: int) -> list[tuple[int, int, int]]:
    a, b = logs.stream_offsets[u], logs.stream_offsets[u + 1]
    return list(zip(logs.tok_type[a:b].tolist(), logs.tok_item[a:b].tolist(), logs.tok_action[a:b].tolist()))


def _assert_same(a, b) -> None:
    for name, value in vars(a).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, getattr(b, name), err_msg=name)


# ============================================================================ MovieLens
@pytest.mark.parametrize("writer, layout, content_dim", [(write_ml100k, "ml-100k", 20), (write_ml1m, "ml-1m", 19)])
def test_movielens_happy_path(tmp_path, writer, layout, content_dim):
    logs = load_movielens(writer(tmp_path), seed=3)
    logs.validate()
    assert logs.source == "movielens" and logs.notes["layout"] == layout
    assert logs.n_items == 8 and logs.n_users == 3 and logs.n_requests == ML_N_REQUESTS
    assert logs.notes["skipped_users_few_requests"] == 1                 # user 9
    assert logs.item_content.shape == (8, content_dim) and logs.item_content.dtype == np.float32
    assert logs.n_organic == 0 and (logs.tok_type == AD).all()
    np.testing.assert_array_equal(logs.stream_offsets, [0, 3, 8, 12])    # users 2, 4, 7 -> 0, 1, 2
    # User 7 in time order: movies 10, 20, 30, 40 (dense 0..3) rated 3, 4, 5, 1.
    assert _user_tokens(logs, 2) == [(AD, 0, CLICK), (AD, 1, CONVERSION), (AD, 2, CONVERSION), (AD, 3, CLICK)]
    # User 2 rated 50 and 60 in the same second: file order (50 first).
    assert logs.tok_item[:3].tolist() == [0, 4, 5]
    np.testing.assert_array_equal(logs.req_hist_end, [0, 1, 2, 0, 1, 2, 3, 4, 0, 1, 2, 3])
    # Context: user 4 rated on Monday 13:00 UTC -> weekday 0, 4-hour bucket 3; user 2 on Thursday 00:00.
    np.testing.assert_array_equal(logs.req_context[3:8], [[0, 3]] * 5)
    np.testing.assert_array_equal(logs.req_context[0], [3, 0])
    assert logs.context_cardinality == (7, 6)
    # Slates: 4 slots each (every kept user left >= 3 unrated movies); the rated movie once, clicked.
    assert len(logs.imp_item) == 4 * ML_N_REQUESTS and (np.diff(logs.imp_offsets) == 4).all()
    assert logs.imp_click.sum() == ML_N_REQUESTS and logs.imp_conv.sum() == ML_N_CONVERSIONS
    assert not (logs.imp_conv > logs.imp_click).any()
    for r in range(logs.n_requests):
        u, items = logs.req_user[r], logs.imp_item[logs.imp_offsets[r]:logs.imp_offsets[r + 1]]
        rated = set(logs.tok_item[logs.stream_offsets[u]:logs.stream_offsets[u + 1]].tolist())
        target = logs.tok_item[logs.stream_offsets[u] + logs.req_hist_end[r]]
        clicked = logs.imp_click[logs.imp_offsets[r]:logs.imp_offsets[r + 1]].astype(bool)
        assert items[clicked].tolist() == [target] and not rated & set(items[~clicked].tolist())
        assert len(set(items.tolist())) == 4
    assert (logs.item_bid > 0).all() and (logs.item_price > 0).all()


def test_movielens_content_and_categories(tmp_path):
    logs = load_movielens(write_ml100k(tmp_path))
    # Movie 40 has no release date: its standardized year is the mean, 0.
    assert logs.item_content[3, -1] == 0.0 and logs.notes["movies_missing_year"] == 1
    np.testing.assert_array_equal(logs.item_content[0, :19], [1 if g in (1, 5) else 0 for g in range(19)])
    assert logs.item_category.tolist() == [1, 8, 0, 16, 5, 8, 11, 3]       # first genre of each movie
    (tmp_path / "m1").mkdir()
    m1 = load_movielens(write_ml1m(tmp_path / "m1"))      # "Untitled without a year" has no (year)
    assert m1.notes["movies_missing_year"] == 1 and m1.item_content[3, -1] == 0.0


def test_movielens_user_attributes(tmp_path):
    logs = load_movielens(write_ml1m(tmp_path))                 # users.dat: gender, age, occupation
    assert logs.user_attr_cardinality == (3, 4, 4)              # 2 genders, 3 ages, 3 occupations, + unknown
    np.testing.assert_array_equal(logs.user_attrs, [[1, 1, 1], [2, 3, 3], [2, 2, 2]])
    (tmp_path / "users.dat").unlink()
    assert load_movielens(tmp_path).user_attr_cardinality == (1,)
    plain = tmp_path / "plain"
    plain.mkdir()
    assert load_movielens(write_ml100k(plain)).user_attr_cardinality == (1,)
    ml100k = tmp_path / "with_users"
    ml100k.mkdir()
    logs = load_movielens(write_ml100k(ml100k, users=True))      # ages 17, 30, 60 -> buckets 1, 25, 56
    assert logs.user_attr_cardinality == (3, 4, 4)
    np.testing.assert_array_equal(logs.user_attrs[:, 1], [1, 2, 3])


def test_movielens_deterministic_for_a_seed(tmp_path):
    folder = write_ml100k(tmp_path)
    a, b, c = load_movielens(folder, seed=5), load_movielens(folder, seed=5), load_movielens(folder, seed=6)
    _assert_same(a, b)
    assert not np.array_equal(a.item_bid, c.item_bid)


def test_movielens_short_slates(tmp_path):
    # Slate size 8 in a catalogue of 8: each user can only fill the slots with movies left unrated.
    logs = load_movielens(write_ml100k(tmp_path), slate_size=8)
    np.testing.assert_array_equal(np.diff(logs.imp_offsets), [6] * 3 + [4] * 5 + [5] * 4)
    assert logs.notes["short_slates"] == ML_N_REQUESTS


# ============================================================================ Taobao
def test_taobao_happy_path(tmp_path):
    logs = load_taobao(write_taobao(tmp_path), seed=1)
    logs.validate()
    assert logs.source == "taobao"
    assert logs.n_users == 2 and logs.n_requests == 7 and len(logs.imp_item) == 9
    assert logs.notes["skipped_users_few_requests"] == 1                 # user 3
    assert logs.n_items == 5                                            # ad 106 is never shown
    np.testing.assert_allclose(logs.item_price, [10.0, 25.5, 3.0, 100.0, 8.0])
    assert logs.item_category.tolist() == [0, 1, 2, 0, 2]               # cate 7, 8, 9
    assert logs.item_content.shape == (5, 33) and logs.item_content.dtype == np.float32
    assert abs(logs.item_content[:, -1].mean()) < 1e-6                  # standardized log price
    assert np.abs(logs.item_content[1, :32]).sum() <= 3                 # NULL brand: 3 hashed ids only
    # Requests in time order; same-second requests of user 1 in file order (pid B first).
    np.testing.assert_array_equal(logs.req_user, [0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(logs.imp_offsets, [0, 2, 3, 4, 5, 6, 7, 9])
    np.testing.assert_array_equal(logs.imp_item, [0, 1, 2, 0, 3, 2, 4, 0, 1])
    np.testing.assert_array_equal(logs.imp_position, [1, 2, 1, 1, 1, 1, 1, 1, 2])
    np.testing.assert_array_equal(logs.imp_click, [1, 0, 1, 0, 1, 0, 1, 0, 0])
    # One buy of cate 7 at 4600 converts both clicks on cate-7 ads (at 1000 and 3000); user 2's buy is too late.
    np.testing.assert_array_equal(logs.imp_conv, [1, 0, 0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(logs.req_context[:, 0], [1, 1, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(logs.req_context[:, 1], [2] * 7)      # 00:xx UTC = 08:xx in Beijing
    assert logs.context_cardinality == (2, 6)
    # Streams: behaviour (organic ids of cates 7, 8, 9 -> 0, 1, 2) interleaved with impressions by time.
    assert logs.n_organic == 3
    assert _user_tokens(logs, 0) == [(ORGANIC, 0, VIEW), (AD, 0, CONVERSION), (AD, 1, IMPRESSION),
                                     (ORGANIC, 2, VIEW), (AD, 2, CLICK), (AD, 0, IMPRESSION),
                                     (AD, 3, CONVERSION), (ORGANIC, 0, VIEW)]
    assert _user_tokens(logs, 1) == [(AD, 2, IMPRESSION), (ORGANIC, 1, VIEW), (AD, 4, CLICK),
                                     (AD, 0, IMPRESSION), (AD, 1, IMPRESSION), (ORGANIC, 2, VIEW)]
    # History = tokens strictly earlier: the two requests at 3000 share one.
    np.testing.assert_array_equal(logs.req_hist_end, [1, 4, 5, 5, 0, 2, 3])
    # Profile: 0 = empty; user 1's pvalue_level is empty, user 2's new_user_class_level too.
    assert len(logs.user_attr_cardinality) == 8
    assert logs.user_attr_cardinality[4] == 3 and logs.user_attr_cardinality[7] == 3
    np.testing.assert_array_equal(logs.user_attrs[:, [4, 7]], [[0, 1], [2, 0]])


def test_taobao_without_behaviour_log(tmp_path):
    logs = load_taobao(write_taobao(tmp_path, behaviour=False))
    assert logs.n_organic == 0 and logs.imp_conv.sum() == 0 and "no behavior_log" in logs.notes["conversions"]
    assert (logs.tok_type == AD).all() and len(logs.tok_item) == 9
    np.testing.assert_array_equal(logs.req_hist_end, [0, 2, 3, 3, 0, 1, 2])


def test_taobao_max_requests_per_user(tmp_path):
    logs = load_taobao(write_taobao(tmp_path), max_requests_per_user=3)
    # User 1's oldest request goes; its impressions stay in the history.
    assert logs.n_requests == 6 and logs.notes["requests_beyond_max_per_user"] == 1
    np.testing.assert_array_equal(logs.req_hist_end, [4, 5, 5, 0, 2, 3])
    np.testing.assert_array_equal(logs.imp_offsets, [0, 1, 2, 3, 4, 5, 7])
    assert len(logs.tok_item) == 14
    with pytest.raises(ValueError, match="max_requests_per_user"):
        load_taobao(tmp_path, max_requests_per_user=0)


def test_taobao_deterministic_for_a_seed(tmp_path):
    folder = write_taobao(tmp_path)
    a, b, c = load_taobao(folder, seed=2), load_taobao(folder, seed=2), load_taobao(folder, seed=3)
    _assert_same(a, b)
    assert not np.array_equal(a.item_bid, c.item_bid)
    np.testing.assert_array_equal(a.item_content, c.item_content)      # hashing does not depend on the seed


# ============================================================================ malformed input
def _ml100k(tmp):
    return write_ml100k(tmp)


def _ml1m(tmp):
    return write_ml1m(tmp)


def _taobao(tmp):
    return write_taobao(tmp)


def _delete(name):
    return lambda folder: (folder / name).unlink()


def _line(name, number, text):
    return lambda folder: replace_line(folder / name, number, text)


def _empty(name):
    return lambda folder: (folder / name).write_bytes(b"")


MALFORMED = {
    # kind: (writer, corruption, words the message must contain)
    "missing u.item": (_ml100k, _delete("u.item"), ["missing required file u.item"]),
    "missing user_profile": (_taobao, _delete("user_profile.csv"), ["missing required file user_profile.csv"]),
    "empty u.data": (_ml100k, _empty("u.data"), ["u.data", "empty"]),
    "empty behavior_log": (_taobao, _empty("behavior_log.csv"), ["behavior_log.csv", "empty"]),
    "wrong header": (_taobao, _line("raw_sample.csv", 1, "user,ts,adgroup_id,pid,nonclk,clk"),
                     ["raw_sample.csv, line 1", "header"]),
    "missing header": (_taobao, _line("ad_feature.csv", 1, "100,7,1,1,11,10.0"), ["ad_feature.csv, line 1", "header"]),
    "too few fields": (_ml100k, _line("u.data", 3, "7\t10\t3"), ["u.data, line 3", "expected 4", "found 3"]),
    "too many fields": (_ml1m, _line("ratings.dat", 2, "2::10::4::50::9"), ["ratings.dat, line 2", "expected 4", "found 5"]),
    "short profile line": (_taobao, _line("user_profile.csv", 3, "2,0,2,1,2,2,3,0"),
                           ["user_profile.csv, line 3", "expected 9"]),
    "blank line": (_ml1m, _line("movies.dat", 4, ""), ["movies.dat, line 4", "empty line"]),
    "non-numeric user id": (_ml100k, _line("u.data", 2, "x2\t10\t4\t50"), ["u.data, line 2", "user_id", "'x2'"]),
    "non-numeric movie id": (_ml1m, _line("movies.dat", 5, "5O::Movie::Comedy"),
                             ["movies.dat, line 5", "movie_id", "integer"]),
    "non-numeric timestamp": (_ml1m, _line("ratings.dat", 6, "7::20::4::noon"), ["ratings.dat, line 6", "timestamp"]),
    "non-numeric rating": (_ml100k, _line("u.data", 4, "4\t10\tfive\t1"), ["u.data, line 4", "rating", "'five'"]),
    "rating above 5": (_ml100k, _line("u.data", 5, "9\t10\t6\t10"), ["u.data, line 5", "rating", "1 to 5"]),
    "rating 0": (_ml1m, _line("ratings.dat", 1, "7::30::0::300"), ["ratings.dat, line 1", "rating"]),
    "unknown movie": (_ml100k, _line("u.data", 7, "2\t999\t2\t60"), ["u.data, line 7", "unknown id '999'", "u.item"]),
    "unknown ad": (_taobao, _line("raw_sample.csv", 4, f"2,1500,999,{A},1,0"),
                   ["raw_sample.csv, line 4", "adgroup_id", "'999'", "ad_feature.csv"]),
    "zero price": (_taobao, _line("ad_feature.csv", 3, "102,8,2,1,NULL,0"), ["ad_feature.csv, line 3", "price", "> 0"]),
    "negative price": (_taobao, _line("ad_feature.csv", 2, "101,7,1,1,11,-3.5"), ["ad_feature.csv, line 2", "price"]),
    "NaN price": (_taobao, _line("ad_feature.csv", 4, "103,9,3,2,12,NaN"), ["ad_feature.csv, line 4", "price", "'NaN'"]),
    "empty price": (_taobao, _line("ad_feature.csv", 4, "103,9,3,2,12,"), ["ad_feature.csv, line 4", "price", "empty"]),
    "clk not 0/1": (_taobao, _line("raw_sample.csv", 3, f"1,1000,102,{A},1,2"), ["raw_sample.csv, line 3", "clk", "0 or 1"]),
    "nonclk not 0/1": (_taobao, _line("raw_sample.csv", 2, f"1,1000,101,{A},yes,1"), ["raw_sample.csv, line 2", "nonclk"]),
    "unknown btag": (_taobao, _line("behavior_log.csv", 3, "1,1500,like,9,12"), ["behavior_log.csv, line 3", "btag", "'like'"]),
    "genre flag not 0/1": (_ml100k, _line("u.item", 2, "10|T (1995)|01-Jan-1995||u|" + "|".join("2" * 19)),
                           ["u.item, line 2", "genre_0"]),
    "duplicate movie": (_ml1m, _line("movies.dat", 3, "20::Again (1990)::Drama"),
                        ["movies.dat, line 3", "duplicate id '20'"]),
    "duplicate user in profile": (_taobao, _line("user_profile.csv", 4, "1,5,8,2,3,1,2,1,4"),
                                  ["user_profile.csv, line 4", "duplicate"]),
    "brand not an id": (_taobao, _line("ad_feature.csv", 5, "104,7,4,3,acme,100.0"), ["ad_feature.csv, line 5", "brand"]),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_input_is_reported(tmp_path, kind):
    writer, corrupt, words = MALFORMED[kind]
    folder = writer(tmp_path)
    corrupt(folder)
    load = load_taobao if writer is _taobao else load_movielens
    with pytest.raises(DataError) as err:
        load(folder)
    for word in words:
        assert word in str(err.value), f"{word!r} not in {str(err.value)!r}"


def test_missing_file_names_the_directory(tmp_path):
    write_taobao(tmp_path)
    (tmp_path / "raw_sample.csv").unlink()
    with pytest.raises(DataError, match="raw_sample.csv") as err:
        load_taobao(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_no_movielens_files_or_no_directory(tmp_path):
    with pytest.raises(DataError, match="no MovieLens files"):
        load_movielens(tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        load_taobao(tmp_path / "absent")
    write_ml1m(tmp_path)
    (tmp_path / "ratings.dat").unlink()
    with pytest.raises(DataError, match="missing required file ratings.dat"):
        load_movielens(tmp_path)


def test_no_user_with_enough_ratings_is_a_data_error_naming_the_file(tmp_path):
    """Every user below MIN_REQUESTS_PER_USER (3) ratings: the loader names the ratings file and
    the requirement, instead of failing later on empty logs."""
    write_ml100k(tmp_path)
    _write(tmp_path / "u.data", ["2\t10\t4\t50", "2\t20\t5\t60", "7\t30\t3\t70"])   # users 2 and 7: 2 and 1
    with pytest.raises(DataError, match=r"u\.data: no user has at least 3 requests \(2 users, at most 2 each\)"):
        load_movielens(tmp_path)


def test_keep_active_users_by_hand():
    from oneranker.loaders.tables import _keep_active_users

    kept, dense, dropped = _keep_active_users(np.array([9, 4, 9, 4, 9, 5, 4]), "x.csv")
    assert kept.tolist() == [4, 9] and dropped == 1                 # user 5 has one entry
    assert dense.tolist() == [1, 0, 1, 0, 1, -1, 0]
    with pytest.raises(DataError, match="x.csv: no user"):
        _keep_active_users(np.array([1, 1, 2]), "x.csv")
