"""SKU catalogs per industry: JAN codes with check digits, Japanese names, tax classes.

A few names carry what vendor A's CSV must survive: circled digits (①), ㈱, half-width
katakana, commas and a double quote. Every name encodes in CP932.
"""

from __future__ import annotations

import numpy as np

from tenpo.simulate.model import TAX_PCTS, Sku

# (name, price incl. tax in yen, tax class: 0 non-taxable, 1 reduced 8 %, 2 standard 10 %)
_ITEMS: dict[str, list[tuple[str, int, int]]] = {
    "apparel": [
        ("ベーシックTシャツ 白 M", 1490, 2),
        ("ベーシックTシャツ 黒 L", 1490, 2),
        ('Tシャツ "LOGO" ネイビー', 2490, 2),
        ("オックスフォードシャツ", 3990, 2),
        ("スリムデニム 30inch", 4990, 2),
        ("ワイドパンツ ベージュ", 3990, 2),
        ("ニットカーディガン", 5990, 2),
        ("ウールコート チャコール", 12900, 2),
        ("ダウンジャケット", 9990, 2),
        ("フリースジャケット", 2990, 2),
        ("ﾛｺﾞｽｳｪｯﾄ ｸﾞﾚｰ", 3490, 2),
        ("ソックス 3足組", 990, 2),
        ("インナー ヒートテック,長袖", 1290, 2),
        ("キャップ ①ブラック", 1990, 2),
        ("レザーベルト", 2990, 2),
        ("トートバッグ キャンバス", 2490, 2),
        ("マフラー カシミヤ混", 3990, 2),
        ("スニーカー 26cm", 6990, 2),
        ("ワンピース 花柄", 5990, 2),
        ("プリーツスカート", 4490, 2),
        ("パーカー オーバーサイズ", 3990, 2),
        ("ギフトボックス", 220, 2),
        ("ショッパー 大", 10, 2),
    ],
    "drugstore": [
        ("ハンドクリーム 50g,無香料", 598, 2),
        ("シャンプー 詰替 400ml", 548, 2),
        ("コンディショナー 詰替", 548, 2),
        ("ボディソープ 480ml", 398, 2),
        ("歯みがき粉 120g", 248, 2),
        ("ハブラシ ふつう", 198, 2),
        ("洗濯洗剤 900g", 328, 2),
        ("ティッシュ 5箱", 398, 2),
        ("トイレットペーパー 12ロール", 548, 2),
        ("かぜ薬 ①錠剤 24錠", 1480, 2),
        ("胃腸薬 顆粒", 1280, 2),
        ("目薬 クール", 698, 2),
        ("絆創膏 30枚", 348, 2),
        ("マスク 50枚入", 598, 2),
        ("化粧水 しっとり", 1580, 2),
        ("日焼け止め SPF50", 1280, 2),
        ("ﾘｯﾌﾟｸﾘｰﾑ", 398, 2),
        ("ビタミンC サプリ 60日分", 980, 1),
        ("栄養ドリンク 100ml", 178, 1),
        ("ミネラルウォーター 2L", 98, 1),
        ("緑茶 525ml", 108, 1),
        ("ポテトチップス うすしお", 128, 1),
        ("チョコレート ミルク", 158, 1),
        ("カップ麺 しょうゆ", 148, 1),
        ("ベビーおしりふき 80枚×3", 398, 2),
        ("紙おむつ M 58枚", 1480, 2),
        ("郵便切手 110円", 110, 0),
    ],
    "supermarket": [
        ("国産 たまねぎ 3玉", 198, 1),
        ("キャベツ 1玉", 178, 1),
        ("バナナ 1房", 158, 1),
        ("りんご ふじ", 128, 1),
        ("トマト 4個", 398, 1),
        ("国産 鶏もも肉 300g", 398, 1),
        ("豚こま切れ 250g", 348, 1),
        ("牛乳 1000ml", 238, 1),
        ("卵 Mサイズ 10個", 258, 1),
        ("食パン 6枚切", 168, 1),
        ("木綿豆腐", 88, 1),
        ("納豆 3P", 98, 1),
        ("ヨーグルト 400g", 198, 1),
        ("お米 5kg", 2680, 1),
        ("サーモン刺身", 598, 1),
        ("幕の内弁当", 498, 1),
        ("ﾎﾟﾃﾄｻﾗﾀﾞ 100g", 138, 1),
        ("からあげ ①パック", 398, 1),
        ("しょうゆ 1L", 278, 1),
        ("サラダ油 1000g", 358, 1),
        ("カップ麺 みそ", 148, 1),
        ("缶ビール 350ml 6缶", 1280, 2),
        ("日本酒 720ml", 1180, 2),
        ("ﾁｮｺ,ﾐﾝﾄ アイス", 158, 1),
        ("キッチンペーパー 2ロール", 198, 2),
        ("ゴミ袋 45L", 298, 2),
        ("㈱山田食品 ぬか漬け", 258, 1),
        ("レジ袋 L", 5, 2),
        ("郵便切手 84円", 84, 0),
    ],
    "cafe": [
        ("ブレンドコーヒー S", 380, 2),
        ("ブレンドコーヒー M", 430, 2),
        ("カフェラテ M", 480, 2),
        ("カフェラテ テイクアウト", 470, 1),
        ("ｱｲｽｺｰﾋｰ", 400, 2),
        ("抹茶ラテ", 520, 2),
        ("紅茶 ①アールグレイ", 420, 2),
        ("オレンジジュース", 450, 2),
        ("クロワッサン", 280, 2),
        ("ツナサンド", 520, 2),
        ("ハムチーズトースト", 560, 2),
        ("チーズケーキ", 480, 2),
        ("チョコチャンクスコーン", 320, 2),
        ("モーニングセット A", 620, 2),
        ("ランチセット,ドリンク付", 980, 2),
        ("スコーン テイクアウト", 310, 1),
        ("コーヒー豆 200g", 1580, 1),
        ("ドリップバッグ 5袋", 780, 1),
        ("タンブラー", 2200, 2),
    ],
}

# Six-digit maker prefixes per industry (JAN "49"/"45" + maker + item + check digit).
_MAKERS = ("4901234", "4902102", "4903301", "4549526", "4987123", "4973456")


def jan_check_digit(first12: str) -> int:
    """The EAN-13/JAN check digit of 12 digits (weights 1,3,1,3... from the left)."""
    if len(first12) != 12 or not first12.isdigit():
        raise ValueError(f"need 12 digits, got {first12!r}")
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return (10 - total % 10) % 10


def is_valid_jan13(code: str) -> bool:
    """Whether ``code`` is 13 digits with a correct check digit."""
    return len(code) == 13 and code.isdigit() and jan_check_digit(code[:12]) == int(code[12])


def price_excl_sen(price_incl: int, tax_pct: int) -> int:
    """Tax-exclusive price in sen of a tax-inclusive yen price (rounded half up)."""
    numerator = price_incl * 100 * 100
    denominator = 100 + tax_pct
    return (2 * numerator + denominator) // (2 * denominator)


def build_catalogs(rng: np.random.Generator) -> dict[str, list[Sku]]:
    """A catalog per industry; JAN codes are unique across all catalogs."""
    catalogs: dict[str, list[Sku]] = {}
    used: set[str] = set()
    for industry_index, (industry, items) in enumerate(sorted(_ITEMS.items())):
        skus: list[Sku] = []
        for name, price, tax_class in items:
            while True:
                maker = _MAKERS[(industry_index + int(rng.integers(0, 3))) % len(_MAKERS)]
                first12 = maker + f"{int(rng.integers(0, 100_000)):05d}"
                jan = first12 + str(jan_check_digit(first12))
                if jan not in used:
                    break
            used.add(jan)
            name.encode("cp932")  # fail fast if a name cannot travel in vendor A's CSV
            skus.append(
                Sku(jan, name, price, price_excl_sen(price, TAX_PCTS[tax_class]), tax_class)
            )
        catalogs[industry] = skus
    return catalogs
