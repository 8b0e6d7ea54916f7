"""Realistic Chinese CRM data: names, companies, e-mails, phones, addresses.

Everything here is deterministic given a `random.Random`, so a batch of rows can be generated
again from its number (the seed is resumable) and `search.py` can draw query terms from the
same vocabularies. Values are produced already in the form the API stores them (e-mails
lower-case, phones E.164, text NFC), because the seed writes rows directly with COPY.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# (surname, pinyin, weight ~ share of the population in per mille); two-character surnames at the end.
SURNAMES: list[tuple[str, str, float]] = [
    ("王", "wang", 71.2),
    ("李", "li", 70.0),
    ("张", "zhang", 66.0),
    ("刘", "liu", 53.8),
    ("陈", "chen", 45.3),
    ("杨", "yang", 30.8),
    ("黄", "huang", 22.3),
    ("赵", "zhao", 20.0),
    ("吴", "wu", 19.7),
    ("周", "zhou", 18.8),
    ("徐", "xu", 14.5),
    ("孙", "sun", 13.8),
    ("马", "ma", 12.9),
    ("朱", "zhu", 12.8),
    ("胡", "hu", 11.6),
    ("郭", "guo", 11.5),
    ("何", "he", 10.6),
    ("林", "lin", 10.2),
    ("高", "gao", 10.0),
    ("罗", "luo", 8.7),
    ("郑", "zheng", 8.1),
    ("梁", "liang", 8.0),
    ("谢", "xie", 7.2),
    ("宋", "song", 6.4),
    ("唐", "tang", 6.2),
    ("许", "xu", 5.9),
    ("韩", "han", 5.6),
    ("冯", "feng", 5.4),
    ("邓", "deng", 5.4),
    ("曹", "cao", 5.3),
    ("彭", "peng", 5.2),
    ("曾", "zeng", 5.0),
    ("肖", "xiao", 4.8),
    ("田", "tian", 4.6),
    ("董", "dong", 4.4),
    ("袁", "yuan", 4.2),
    ("潘", "pan", 4.1),
    ("于", "yu", 4.0),
    ("蒋", "jiang", 3.9),
    ("蔡", "cai", 3.8),
    ("余", "yu", 3.7),
    ("杜", "du", 3.6),
    ("叶", "ye", 3.5),
    ("程", "cheng", 3.4),
    ("苏", "su", 3.3),
    ("魏", "wei", 3.3),
    ("吕", "lv", 3.2),
    ("丁", "ding", 3.1),
    ("任", "ren", 3.0),
    ("沈", "shen", 2.9),
    ("姚", "yao", 2.8),
    ("卢", "lu", 2.8),
    ("姜", "jiang", 2.7),
    ("崔", "cui", 2.6),
    ("钟", "zhong", 2.5),
    ("谭", "tan", 2.4),
    ("陆", "lu", 2.3),
    ("汪", "wang", 2.3),
    ("范", "fan", 2.2),
    ("金", "jin", 2.2),
    ("石", "shi", 2.1),
    ("廖", "liao", 2.1),
    ("贾", "jia", 2.0),
    ("夏", "xia", 2.0),
    ("韦", "wei", 2.0),
    ("付", "fu", 1.9),
    ("方", "fang", 1.9),
    ("白", "bai", 1.8),
    ("邹", "zou", 1.8),
    ("孟", "meng", 1.7),
    ("熊", "xiong", 1.7),
    ("秦", "qin", 1.7),
    ("邱", "qiu", 1.6),
    ("江", "jiang", 1.6),
    ("尹", "yin", 1.5),
    ("薛", "xue", 1.5),
    ("闫", "yan", 1.5),
    ("段", "duan", 1.4),
    ("雷", "lei", 1.4),
    ("侯", "hou", 1.4),
    ("龙", "long", 1.3),
    ("史", "shi", 1.3),
    ("陶", "tao", 1.2),
    ("黎", "li", 1.2),
    ("贺", "he", 1.2),
    ("顾", "gu", 1.2),
    ("毛", "mao", 1.1),
    ("郝", "hao", 1.1),
    ("龚", "gong", 1.1),
    ("邵", "shao", 1.1),
    ("万", "wan", 1.0),
    ("钱", "qian", 1.0),
    ("严", "yan", 1.0),
    ("覃", "qin", 1.0),
    ("武", "wu", 1.0),
    ("戴", "dai", 1.0),
    ("莫", "mo", 0.9),
    ("孔", "kong", 0.9),
    ("向", "xiang", 0.9),
    ("汤", "tang", 0.9),
    ("欧阳", "ouyang", 0.5),
    ("司马", "sima", 0.1),
    ("上官", "shangguan", 0.1),
    ("诸葛", "zhuge", 0.1),
]

# One-character given names, most common first (weights fall off like a Zipf curve).
SINGLE_GIVEN: list[tuple[str, str]] = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("娟", "juan"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("霞", "xia"),
    ("平", "ping"),
    ("刚", "gang"),
    ("辉", "hui"),
    ("鹏", "peng"),
    ("华", "hua"),
    ("飞", "fei"),
    ("斌", "bin"),
    ("宇", "yu"),
    ("浩", "hao"),
    ("凯", "kai"),
    ("健", "jian"),
    ("俊", "jun"),
    ("帆", "fan"),
    ("旭", "xu"),
    ("宁", "ning"),
    ("林", "lin"),
    ("欢", "huan"),
    ("阳", "yang"),
    ("亮", "liang"),
    ("晨", "chen"),
    ("婷", "ting"),
    ("雪", "xue"),
    ("琳", "lin"),
    ("倩", "qian"),
    ("颖", "ying"),
    ("慧", "hui"),
    ("玲", "ling"),
    ("莉", "li"),
    ("燕", "yan"),
    ("红", "hong"),
    ("梅", "mei"),
    ("萍", "ping"),
    ("波", "bo"),
    ("峰", "feng"),
    ("毅", "yi"),
    ("博", "bo"),
    ("鑫", "xin"),
    ("蕾", "lei"),
    ("瑶", "yao"),
    ("璐", "lu"),
    ("佳", "jia"),
    ("悦", "yue"),
]
GIVEN_FIRST: list[tuple[str, str]] = [
    ("建", "jian"),
    ("志", "zhi"),
    ("秀", "xiu"),
    ("桂", "gui"),
    ("子", "zi"),
    ("欣", "xin"),
    ("梓", "zi"),
    ("一", "yi"),
    ("浩", "hao"),
    ("宇", "yu"),
    ("俊", "jun"),
    ("文", "wen"),
    ("晓", "xiao"),
    ("海", "hai"),
    ("国", "guo"),
    ("小", "xiao"),
    ("春", "chun"),
    ("玉", "yu"),
    ("立", "li"),
    ("思", "si"),
    ("雨", "yu"),
    ("嘉", "jia"),
    ("家", "jia"),
    ("明", "ming"),
    ("永", "yong"),
    ("德", "de"),
    ("金", "jin"),
    ("丽", "li"),
    ("美", "mei"),
    ("淑", "shu"),
    ("雅", "ya"),
    ("佳", "jia"),
    ("天", "tian"),
    ("振", "zhen"),
    ("诗", "shi"),
    ("梦", "meng"),
    ("泽", "ze"),
    ("博", "bo"),
    ("婉", "wan"),
    ("红", "hong"),
]
GIVEN_SECOND: list[tuple[str, str]] = [
    ("华", "hua"),
    ("强", "qiang"),
    ("英", "ying"),
    ("涵", "han"),
    ("怡", "yi"),
    ("诺", "nuo"),
    ("然", "ran"),
    ("轩", "xuan"),
    ("明", "ming"),
    ("平", "ping"),
    ("军", "jun"),
    ("东", "dong"),
    ("峰", "feng"),
    ("红", "hong"),
    ("兰", "lan"),
    ("芳", "fang"),
    ("杰", "jie"),
    ("辉", "hui"),
    ("琪", "qi"),
    ("萱", "xuan"),
    ("彤", "tong"),
    ("宇", "yu"),
    ("霖", "lin"),
    ("婷", "ting"),
    ("敏", "min"),
    ("伟", "wei"),
    ("洋", "yang"),
    ("磊", "lei"),
    ("鹏", "peng"),
    ("静", "jing"),
    ("颖", "ying"),
    ("丹", "dan"),
    ("玲", "ling"),
    ("梅", "mei"),
    ("燕", "yan"),
    ("琳", "lin"),
    ("睿", "rui"),
    ("阳", "yang"),
    ("晨", "chen"),
    ("瑶", "yao"),
]
# Popular whole given names (建华, 秀英…) that the random pairs above would make too rarely.
POPULAR_GIVEN: list[tuple[str, str]] = [
    ("建华", "jianhua"),
    ("志强", "zhiqiang"),
    ("秀英", "xiuying"),
    ("桂英", "guiying"),
    ("子涵", "zihan"),
    ("欣怡", "xinyi"),
    ("梓涵", "zihan"),
    ("一诺", "yinuo"),
    ("浩然", "haoran"),
    ("宇轩", "yuxuan"),
    ("建国", "jianguo"),
    ("建军", "jianjun"),
    ("海燕", "haiyan"),
    ("晓明", "xiaoming"),
    ("丽华", "lihua"),
    ("秀兰", "xiulan"),
    ("玉兰", "yulan"),
    ("春梅", "chunmei"),
    ("志明", "zhiming"),
    ("文杰", "wenjie"),
    ("国强", "guoqiang"),
    ("晓燕", "xiaoyan"),
    ("丽娟", "lijuan"),
    ("海波", "haibo"),
    ("雨涵", "yuhan"),
]

WESTERN_FIRST = [
    "James",
    "John",
    "Robert",
    "Michael",
    "David",
    "William",
    "Richard",
    "Joseph",
    "Thomas",
    "Charles",
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Elizabeth",
    "Barbara",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Daniel",
    "Matthew",
    "Anthony",
    "Mark",
    "Emma",
    "Olivia",
    "Sophia",
    "Lucas",
    "Peter",
    "Anna",
    "Kevin",
    "Jason",
    "Eric",
    "Jack",
    "Tony",
    "Lily",
    "Grace",
    "Amy",
    "Vincent",
    "Helen",
]
WESTERN_LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Martin",
    "Walker",
    "Hall",
    "Allen",
    "Young",
    "King",
    "Wright",
    "Scott",
    "Green",
    "Baker",
    "Adams",
    "Nelson",
    "Müller",
    "Schmidt",
    "Dubois",
    "Rossi",
    "Tanaka",
    "Kim",
    "Nguyen",
    "O'Brien",
]

# (city, province, postal-code prefix, area code, weight, streets)
CITIES: list[tuple[str, str, str, str, float, tuple[str, ...]]] = [
    ("上海", "上海市", "200", "21", 14, ("南京西路", "淮海中路", "世纪大道", "漕溪北路", "延安西路", "张江路")),
    ("北京", "北京市", "100", "10", 13, ("建国门外大街", "中关村大街", "朝阳门北大街", "长安街", "学院路")),
    ("广州", "广东省", "510", "20", 8, ("天河路", "环市东路", "珠江新城花城大道", "中山五路")),
    ("深圳", "广东省", "518", "755", 9, ("深南大道", "科技园南路", "福华三路", "华强北路")),
    ("杭州", "浙江省", "310", "571", 6, ("文三路", "延安路", "钱江路", "江南大道")),
    ("成都", "四川省", "610", "28", 5, ("天府大道", "人民南路", "蜀都大道", "红星路")),
    ("南京", "江苏省", "210", "25", 4, ("中山路", "汉中路", "新街口", "江东中路")),
    ("武汉", "湖北省", "430", "27", 4, ("解放大道", "中北路", "珞喻路", "光谷大道")),
    ("西安", "陕西省", "710", "29", 3, ("高新路", "长安北路", "科技路", "南二环西段")),
    ("重庆", "重庆市", "400", "23", 4, ("解放碑", "渝州路", "金开大道", "观音桥步行街")),
    ("天津", "天津市", "300", "22", 3, ("南京路", "友谊路", "卫津路", "海河东路")),
    ("苏州", "江苏省", "215", "512", 4, ("干将路", "苏州大道", "星湖街", "人民路")),
    ("长沙", "湖南省", "410", "731", 2, ("五一大道", "芙蓉中路", "湘江中路")),
    ("郑州", "河南省", "450", "371", 2, ("金水路", "花园路", "中原路")),
    ("青岛", "山东省", "266", "532", 2, ("香港中路", "山东路", "东海西路")),
    ("厦门", "福建省", "361", "592", 2, ("湖滨南路", "厦禾路", "环岛路")),
    ("宁波", "浙江省", "315", "574", 2, ("中山东路", "江东北路", "天童南路")),
    ("合肥", "安徽省", "230", "551", 2, ("长江中路", "政务区祁门路", "望江西路")),
    ("济南", "山东省", "250", "531", 1.5, ("泉城路", "经十路", "历山路")),
    ("沈阳", "辽宁省", "110", "24", 1.5, ("青年大街", "北京街", "中山路")),
    ("大连", "辽宁省", "116", "411", 1.5, ("人民路", "中山路", "星海广场")),
    ("昆明", "云南省", "650", "871", 1, ("北京路", "滇池路", "东风西路")),
    ("福州", "福建省", "350", "591", 1.5, ("五四路", "八一七北路", "工业路")),
    ("东莞", "广东省", "523", "769", 2.5, ("东城大道", "鸿福路", "松山湖大道")),
]

# Company brand characters, industries (Chinese word, English for domains, industry label) and suffixes.
BRAND_CHARS: list[tuple[str, str]] = [
    ("天", "tian"),
    ("元", "yuan"),
    ("华", "hua"),
    ("盛", "sheng"),
    ("鑫", "xin"),
    ("宏", "hong"),
    ("泰", "tai"),
    ("达", "da"),
    ("瑞", "rui"),
    ("祥", "xiang"),
    ("恒", "heng"),
    ("信", "xin"),
    ("通", "tong"),
    ("博", "bo"),
    ("远", "yuan"),
    ("金", "jin"),
    ("海", "hai"),
    ("中", "zhong"),
    ("新", "xin"),
    ("东", "dong"),
    ("方", "fang"),
    ("明", "ming"),
    ("辉", "hui"),
    ("正", "zheng"),
    ("德", "de"),
    ("安", "an"),
    ("康", "kang"),
    ("宇", "yu"),
    ("嘉", "jia"),
    ("联", "lian"),
    ("创", "chuang"),
    ("智", "zhi"),
    ("科", "ke"),
    ("凯", "kai"),
    ("荣", "rong"),
    ("昌", "chang"),
    ("隆", "long"),
    ("兴", "xing"),
    ("发", "fa"),
    ("利", "li"),
    ("汇", "hui"),
    ("丰", "feng"),
    ("美", "mei"),
    ("佳", "jia"),
    ("永", "yong"),
    ("和", "he"),
    ("润", "run"),
    ("森", "sen"),
    ("星", "xing"),
    ("光", "guang"),
]
INDUSTRIES: list[tuple[str, str, str]] = [
    ("贸易", "trade", "批发和零售"),
    ("科技", "tech", "信息技术"),
    ("电子", "electronics", "电子制造"),
    ("机械", "machinery", "机械制造"),
    ("物流", "logistics", "交通运输"),
    ("信息技术", "it", "信息技术"),
    ("网络科技", "net", "互联网"),
    ("生物科技", "bio", "生物医药"),
    ("医药", "pharma", "生物医药"),
    ("食品", "food", "食品饮料"),
    ("服装", "apparel", "纺织服装"),
    ("建筑工程", "build", "建筑业"),
    ("房地产开发", "estate", "房地产"),
    ("文化传媒", "media", "文化传媒"),
    ("教育科技", "edu", "教育"),
    ("投资管理", "capital", "金融"),
    ("咨询", "consulting", "商务服务"),
    ("化工", "chem", "化工"),
    ("新能源", "energy", "能源"),
    ("汽车配件", "auto", "汽车"),
    ("家具", "furniture", "家居"),
    ("包装材料", "pack", "制造业"),
    ("餐饮管理", "catering", "餐饮"),
    ("环保科技", "eco", "环保"),
]
COMPANY_SUFFIXES = [("有限公司", 70), ("股份有限公司", 15), ("有限责任公司", 10), ("集团有限公司", 5)]
COMPANY_SIZES = [
    ("1-10", 20),
    ("11-50", 35),
    ("51-200", 25),
    ("201-500", 10),
    ("501-1000", 5),
    ("1001-5000", 4),
    ("5001+", 1),
]
COMPANY_TAGS = ["重点客户", "vip", "经销商", "供应商", "华东", "华南", "华北", "西南", "上市公司", "战略合作"]

TITLES = [
    "销售经理",
    "采购经理",
    "总经理",
    "财务总监",
    "市场专员",
    "技术总监",
    "行政主管",
    "人事经理",
    "项目经理",
    "客户经理",
    "工程师",
    "副总经理",
    "董事长",
    "采购专员",
    "运营总监",
    "CEO",
    "CTO",
    "Sales Manager",
    "产品经理",
    "法务专员",
]
CONTACT_TAGS = [
    "vip",
    "重点客户",
    "展会",
    "老客户",
    "潜在客户",
    "华东",
    "华南",
    "newsletter",
    "2024展会",
    "待跟进",
    "决策人",
    "已报价",
]
LIFECYCLE = [
    ("subscriber", 15),
    ("lead", 35),
    ("marketing_qualified", 12),
    ("sales_qualified", 8),
    ("opportunity", 7),
    ("customer", 12),
    ("repeat_customer", 5),
    ("loyal", 2),
    ("churned", 4),
]
SOURCES = [
    ("import", 30),
    ("web_form", 20),
    ("manual", 15),
    ("api", 10),
    ("integration", 8),
    ("event", 6),
    ("referral", 4),
    ("email", 3),
    ("phone", 2),
    ("social", 1),
    ("other", 1),
]
OPT_IN_SOURCES = ["manual", "web_form", "event", "api"]
FREE_MAIL = [
    ("qq.com", 25),
    ("163.com", 18),
    ("126.com", 8),
    ("gmail.com", 6),
    ("outlook.com", 5),
    ("sina.com", 4),
    ("foxmail.com", 4),
    ("hotmail.com", 2),
    ("yahoo.com", 1),
]
# Mobile prefixes in use (each one checked against libphonenumber when the seed starts).
MOBILE_PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "145",
    "147",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "173",
    "175",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "184",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
]


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


_SURNAME_CUM = _cumulative([w for _, _, w in SURNAMES])
_SINGLE_CUM = _cumulative([1 / (i + 1) ** 0.8 for i in range(len(SINGLE_GIVEN))])
_CITY_CUM = _cumulative([c[4] for c in CITIES])
_LIFECYCLE_CUM = _cumulative([w for _, w in LIFECYCLE])
_SOURCE_CUM = _cumulative([w for _, w in SOURCES])
_MAIL_CUM = _cumulative([w for _, w in FREE_MAIL])
_SUFFIX_CUM = _cumulative([w for _, w in COMPANY_SUFFIXES])
_SIZE_CUM = _cumulative([w for _, w in COMPANY_SIZES])


def _pick(rng: random.Random, items: list[object], cum: list[float]) -> object:
    return rng.choices(items, cum_weights=cum, k=1)[0]


@dataclass(frozen=True, slots=True)
class Person:
    first_name: str
    last_name: str
    first_latin: str  # for e-mail local parts
    last_latin: str
    chinese: bool


def person(rng: random.Random) -> Person:
    roll = rng.random()
    if roll < 0.05:  # a foreigner
        first, last = rng.choice(WESTERN_FIRST), rng.choice(WESTERN_LAST)
        return Person(first, last, first.lower(), last.lower().replace("ü", "ue").replace("'", ""), False)
    surname, surname_py, _ = _pick(rng, SURNAMES, _SURNAME_CUM)  # type: ignore[misc]
    if roll < 0.08:  # a Chinese person using an English given name with the pinyin surname
        first = rng.choice(WESTERN_FIRST)
        return Person(first, surname_py.capitalize(), first.lower(), surname_py, False)
    shape = rng.random()
    if shape < 0.35:
        given, given_py = _pick(rng, SINGLE_GIVEN, _SINGLE_CUM)  # type: ignore[misc]
    elif shape < 0.50:
        given, given_py = rng.choice(POPULAR_GIVEN)
    else:
        (a, a_py), (b, b_py) = rng.choice(GIVEN_FIRST), rng.choice(GIVEN_SECOND)
        given, given_py = a + b, a_py + b_py
    return Person(given, surname, given_py, surname_py, True)


def mobile(rng: random.Random, prefixes: list[str]) -> str:
    return f"+86{rng.choice(prefixes)}{rng.randrange(10**8):08d}"


def landline(rng: random.Random, area_code: str) -> str:
    return f"+86{area_code}{rng.randrange(2, 9)}{rng.randrange(10**7):07d}"


def email(rng: random.Random, p: Person, company_domain: str | None) -> str:
    domain: str
    if company_domain and rng.random() < 0.35:
        domain = company_domain
    else:
        domain = str(_pick(rng, [d for d, _ in FREE_MAIL], _MAIL_CUM))
    if domain == "qq.com" and rng.random() < 0.5:
        return f"{rng.randrange(10**4, 10**10)}@qq.com"  # QQ numbers
    f, last = p.first_latin, p.last_latin
    style = rng.randrange(7)
    year = rng.randrange(1965, 2004)
    local = [
        f"{last}.{f}",
        f"{last}{f}",
        f"{f}.{last}",
        f"{last}{f}{rng.randrange(1, 100)}",
        f"{last[0]}{f}{year}",
        f"{f}{last}{year % 100:02d}",
        f"{last}_{f}{rng.randrange(1, 1000)}",
    ][style]
    return f"{local}@{domain}"


@dataclass(frozen=True, slots=True)
class CompanySpec:
    name: str
    brand: str
    city_index: int
    domain: str
    industry: str
    size: str
    phone: str | None


def company(rng: random.Random) -> CompanySpec:
    city_index = int(_pick(rng, list(range(len(CITIES))), _CITY_CUM))  # type: ignore[call-overload]
    city = CITIES[city_index][0]
    (a, a_py), (b, b_py) = rng.sample(BRAND_CHARS, 2)
    word, word_en, industry = rng.choice(INDUSTRIES)
    suffix = str(_pick(rng, [s for s, _ in COMPANY_SUFFIXES], _SUFFIX_CUM))
    name = f"{city}{a}{b}{word}{suffix}" if rng.random() < 0.85 else f"{a}{b}{word}({city}){suffix}"
    tld = rng.choice(["com", "cn", "com.cn", "net"])
    domain = f"{a_py}{b_py}-{word_en}.{tld}" if rng.random() < 0.6 else f"{a_py}{b_py}{word_en}.{tld}"
    phone = landline(rng, CITIES[city_index][3]) if rng.random() < 0.8 else None
    size = str(_pick(rng, [s for s, _ in COMPANY_SIZES], _SIZE_CUM))
    return CompanySpec(name, a + b, city_index, domain, industry, size, phone)


def lifecycle(rng: random.Random) -> str:
    return str(_pick(rng, [s for s, _ in LIFECYCLE], _LIFECYCLE_CUM))


def source(rng: random.Random) -> str:
    return str(_pick(rng, [s for s, _ in SOURCES], _SOURCE_CUM))


def city_index(rng: random.Random) -> int:
    return int(_pick(rng, list(range(len(CITIES))), _CITY_CUM))  # type: ignore[call-overload]


def street_address(rng: random.Random, city_idx: int) -> str:
    street = rng.choice(CITIES[city_idx][5])
    return f"{street}{rng.randrange(1, 2000)}号"


def postal_code(rng: random.Random, city_idx: int) -> str:
    return f"{CITIES[city_idx][2]}{rng.randrange(1000):03d}"
