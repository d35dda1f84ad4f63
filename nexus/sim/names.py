"""Reference data for the synthetic organisation: names, departments and titles, offices, device models.

Names are international on purpose: accented ones (NFC here) let the generator plant Unicode-form noise, and
multi-word or hyphenated surnames exercise whitespace handling. No name contains a comma (an AD ``cn`` would need
escaping) and every accented one folds to ASCII for mail addresses (see :data:`ASCII_FOLD`).
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_NAMES: tuple[str, ...] = (
    # English
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
    "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Daniel", "Emily", "Matthew", "Olivia", "Andrew", "Sophie", "Christopher", "Hannah", "Ryan", "Grace",
    "Benjamin", "Charlotte", "Samuel", "Amelia", "Jack", "Isabella", "Oliver", "Emma", "Henry", "Abigail",
    # Spanish / Portuguese
    "José", "María", "Sofía", "Lucía", "Andrés", "Martín", "Joaquín", "Inés", "Ramón", "Raúl",
    "Álvaro", "João", "Sebastião", "Carlos", "Juan", "Diego", "Camila", "Valentina", "Mateo", "Beatriz",
    # French
    "François", "Hélène", "Zoé", "Chloé", "Loïc", "Anaïs", "Cédric", "Jérôme", "Élodie", "Amélie",
    "Noël", "Gaëlle", "René", "Benoît", "Jean-Luc", "Marie-Claire", "Julien", "Camille", "Mathilde", "Luc",
    # German / Nordic
    "Jürgen", "Jörg", "Günther", "Björn", "Åsa", "Sören", "Mårten", "Håkan", "Lukas", "Anna",
    "Katrin", "Ingrid", "Leonie", "Maximilian", "Sigrid", "Lars", "Freya", "Nils", "Ulrike", "Matthias",
    # Central / Eastern European
    "Zoltán", "Dávid", "Tomáš", "Lukáš", "Šárka", "Petra", "Marek", "Agnieszka", "Paweł", "Małgorzata",
    "Dušan", "Jiří", "Ivana", "Katarzyna", "Bogdan", "Elena", "Dmitri", "Natalia", "Andrei", "Milena",
    # Turkish / Middle Eastern / African
    "Çağla", "Emre", "Gökhan", "Özge", "Şükrü", "Fatima", "Ahmed", "Omar", "Layla", "Yusuf",
    "Zainab", "Chinedu", "Ngozi", "Kwame", "Amara", "Oluwaseun", "Thandiwe", "Kofi", "Amina", "Tariq",
    # South / East Asian
    "Wei", "Jing", "Hiroshi", "Yuki", "Haruto", "Sakura", "Min-jun", "Ji-woo", "Arjun", "Priya",
    "Rahul", "Ananya", "Vikram", "Deepika", "Thảo", "Linh", "Anh", "Minh", "Mei", "Kenji",
    # Irish
    "Siobhán", "Seán", "Niamh", "Aoife", "Pádraig", "Ciarán", "Róisín", "Éamon", "Orla", "Declan",
    # more of each, so that 100k people rarely share a name
    "Nathan", "Rachel", "Aaron", "Megan", "Adam", "Lauren", "Kevin", "Laura", "Brian", "Rebecca",
    "Jason", "Nicole", "Justin", "Stephanie", "Eric", "Kimberly", "Jacob", "Michelle", "Tyler", "Heather",
    "Ethan", "Ava", "Noah", "Mia", "Logan", "Chloe", "Lucas", "Ella", "Owen", "Lily",
    "Pablo", "Alejandro", "Guadalupe", "Rocío", "Ximena", "Renata", "Tomás", "Adrián", "Iñaki", "Begoña",
    "Gonçalo", "Leonor", "Rafael", "Mariana", "Thiago", "Larissa", "Fábio", "Vinícius", "Letícia", "Débora",
    "Étienne", "Céline", "Aurélie", "Maëlle", "Théo", "Léa", "Clément", "Océane", "Hugo", "Manon",
    "Anders", "Astrid", "Magnus", "Linnéa", "Erik", "Maja", "Henrik", "Solveig", "Jens", "Liv",
    "Felix", "Greta", "Moritz", "Käthe", "Florian", "Jana", "Tobias", "Lena", "Stefan", "Hanna",
    "Ondřej", "Zuzana", "Radek", "Veronika", "Bartosz", "Zofia", "Krzysztof", "Ewa", "Ștefan", "Ioana",
    "Mehmet", "Ayşe", "Burak", "Elif", "Hassan", "Nour", "Karim", "Yasmin", "Samir", "Leila",
    "Adebayo", "Chiamaka", "Emeka", "Folake", "Sipho", "Lerato", "Kwabena", "Esi", "Baraka", "Wanjiru",
    "Takeshi", "Aiko", "Ren", "Hana", "Sora", "Daiki", "Seo-yeon", "Hyun-woo", "Xiaoming", "Yan",
    "Rohan", "Kavya", "Aditya", "Sneha", "Siddharth", "Pooja", "Karan", "Nisha", "Varun", "Meera",
)  # fmt: skip

LAST_NAMES: tuple[str, ...] = (
    # English
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor",
    "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker",
    "Hall", "Young", "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill",
    "Campbell", "Mitchell", "Roberts", "Carter", "Phillips", "Evans", "Turner", "Parker", "Collins", "Edwards",
    "Stewart", "Morris", "Murphy", "Cook", "Rogers", "Morgan", "Cooper", "Peterson", "Reed", "Bailey",
    "Bell", "Kelly", "Howard", "Ward", "Cox", "Richardson", "Wood", "Watson", "Brooks", "Bennett",
    "Gray", "Hughes", "Price", "Sanders", "Myers", "Long", "Ross", "Foster", "O'Brien", "O'Connor",
    "MacDonald", "McCarthy", "Fitzgerald", "Byrne", "Gallagher",
    # Spanish / Portuguese
    "García", "Martínez", "Rodríguez", "Hernández", "López", "González", "Pérez", "Sánchez", "Ramírez", "Gómez",
    "Díaz", "Muñoz", "Álvarez", "Jiménez", "Fernández", "Núñez", "Ibáñez", "Peña", "Castaño", "Gonçalves",
    "Araújo", "Simões", "Magalhães", "Brandão", "Guimarães", "de la Cruz", "Dos Santos", "Ortega", "Silva", "Costa",
    # German / Dutch
    "Müller", "Schröder", "Köhler", "Weiß", "Groß", "Jäger", "Krüger", "Hoffmann", "Schneider", "Fischer",
    "Becker", "Wagner", "Schäfer", "Lehmann", "Zimmermann", "Böhm", "van Dijk", "de Vries", "Jansen", "Bakker",
    # French / Canadian French
    "Dubois", "Lefèvre", "Girard", "Moreau", "Bérubé", "Fournier", "Mercier", "Lévesque", "Côté", "Gagné",
    "Bélanger", "Hébert", "Rousseau", "Lambert", "Faure",
    # Nordic / Finnish
    "Andersson", "Johansson", "Nyström", "Löfgren", "Ångström", "Sørensen", "Håkansson", "Lindqvist", "Ødegaard",
    "Virtanen", "Mäkinen", "Hämäläinen", "Korhonen", "Nieminen", "Eriksen",
    # Central / Eastern European
    "Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Dvořák", "Novák", "Černý", "Horváth", "Szabó", "Kovács",
    "Tóth", "Nagy", "Popescu", "Ionescu", "Petrović", "Jovanović", "Ivanov", "Petrov", "Smirnov", "Kuznetsov",
    # Turkish / Middle Eastern / African
    "Y\u0131lmaz", "Kaya", "Demir", "Şahin", "Çelik", "Öztürk", "Haddad", "Khoury", "Nasser", "Rahman",
    "Hussain", "Cohen", "Levi", "Friedman", "Okafor", "Adeyemi", "Mensah", "Osei", "Abubakar", "Nkosi",
    # South / East Asian
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou",
    "Tanaka", "Suzuki", "Takahashi", "Watanabe", "Yamamoto", "Nakamura", "Kim", "Lee", "Park", "Choi",
    "Nguyễn", "Trần", "Phạm", "Lê", "Patel", "Sharma", "Singh", "Kumar", "Gupta", "Reddy",
    "Iyer", "Nair", "Mehta", "Das", "Bose",
    # more of each, so that 100k people rarely share a name
    "Barnes", "Fisher", "Henderson", "Coleman", "Simmons", "Patterson", "Jordan", "Reynolds", "Hamilton", "Graham",
    "Wallace", "Woods", "Cole", "West", "Owens", "Marshall", "Ellis", "Gibson", "Mcdonald", "Kennedy",
    "Warren", "Dixon", "Burns", "Gordon", "Shaw", "Holmes", "Rice", "Hunt", "Black", "Palmer",
    "Castillo", "Vargas", "Romero", "Herrera", "Medina", "Aguilar", "Vásquez", "Cortés", "Rincón", "Benítez",
    "Carvalho", "Ribeiro", "Almeida", "Lopes", "Sousa", "Pereira", "Rocha", "Teixeira", "Gaspar", "Antunes",
    "Leroy", "Roux", "Vincent", "Fontaine", "Chevalier", "Robin", "Masson", "Perrin", "Clément", "Gauthier",
    "Hartmann", "Krause", "Meier", "Lange", "Schmitt", "Werner", "Schulz", "Neumann", "Schwarz", "Braun",
    "Bergström", "Sjöberg", "Lundgren", "Holm", "Dahl", "Berg", "Strand", "Lindberg", "Åberg", "Jørgensen",
    "Kowalczyk", "Kamiński", "Lewandowski", "Zieliński", "Szymański", "Procházka", "Kučera", "Veselý", "Fekete",
    "Balogh",
    "Arslan", "Doğan", "Ayd\u0131n", "Özdemir", "Koç", "Mansour", "Saleh", "Farah", "Aziz", "Karimi",
    "Okonkwo", "Eze", "Boateng", "Asante", "Mwangi", "Otieno", "Dlamini", "Ndlovu", "Diallo", "Traoré",
    "Sato", "Ito", "Kobayashi", "Kato", "Yoshida", "Yamada", "Sasaki", "Kang", "Yoon", "Jang",
    "Xu", "Sun", "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Luo", "Gao",
    "Malhotra", "Chopra", "Kapoor", "Joshi", "Pillai", "Menon", "Rao", "Bhatt", "Chatterjee", "Banerjee",
    "Võ", "Đặng", "Bùi", "Hoàng", "Huỳnh", "Phan", "Vũ", "Dương", "Ngô", "Đỗ",
)  # fmt: skip

#: Letters that Unicode decomposition does not reduce to ASCII; applied after stripping combining marks.
ASCII_FOLD: dict[str, str] = {
    "ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D",
    "þ": "th", "\u0131": "i", "œ": "oe",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DepartmentSpec:
    """A department: its share of the headcount, the head's title, manager titles by depth, individual titles."""

    name: str
    weight: float
    head_title: str
    manager_titles: tuple[str, ...]  # depth 1, 2, 3... below the head (the last one repeats)
    ic_titles: tuple[str, ...]  # individual contributors, junior first


#: Ordered by headcount share: a small organisation uses only the first few.
DEPARTMENTS: tuple[DepartmentSpec, ...] = (
    DepartmentSpec(
        "Engineering", 28, "Chief Technology Officer",
        ("VP of Engineering", "Director of Engineering", "Engineering Manager"),
        ("Software Engineer I", "Software Engineer II", "Senior Software Engineer", "Staff Software Engineer",
         "Principal Software Engineer", "QA Engineer", "Site Reliability Engineer", "DevOps Engineer"),
    ),
    DepartmentSpec(
        "Sales", 16, "Chief Revenue Officer",
        ("VP of Sales", "Regional Sales Director", "Sales Manager"),
        ("Sales Development Representative", "Account Executive", "Senior Account Executive",
         "Enterprise Account Executive", "Sales Engineer", "Sales Operations Analyst"),
    ),
    DepartmentSpec(
        "Customer Success", 9, "VP of Customer Success",
        ("Director of Customer Success", "Customer Success Manager Lead", "Support Team Lead"),
        ("Support Specialist", "Senior Support Specialist", "Customer Success Manager", "Technical Account Manager",
         "Implementation Consultant"),
    ),
    DepartmentSpec(
        "Marketing", 7, "Chief Marketing Officer",
        ("VP of Marketing", "Director of Marketing", "Marketing Manager"),
        ("Marketing Coordinator", "Content Strategist", "Product Marketing Manager", "SEO Specialist",
         "Demand Generation Manager", "Brand Designer"),
    ),
    DepartmentSpec(
        "Operations", 6, "Chief Operating Officer",
        ("VP of Operations", "Director of Operations", "Operations Manager"),
        ("Operations Analyst", "Business Analyst", "Senior Operations Analyst", "Program Manager",
         "Logistics Coordinator"),
    ),
    DepartmentSpec(
        "Product", 5, "Chief Product Officer",
        ("VP of Product", "Director of Product Management", "Group Product Manager"),
        ("Associate Product Manager", "Product Manager", "Senior Product Manager", "Technical Product Manager",
         "Product Analyst"),
    ),
    DepartmentSpec(
        "Finance", 5, "Chief Financial Officer",
        ("VP of Finance", "Controller", "Finance Manager"),
        ("Accountant", "Senior Accountant", "Financial Analyst", "Senior Financial Analyst",
         "Accounts Payable Specialist", "Payroll Specialist"),
    ),
    DepartmentSpec(
        "Information Technology", 4, "Chief Information Officer",
        ("Director of IT", "IT Manager", "Service Desk Lead"),
        ("Service Desk Analyst", "Systems Administrator", "Senior Systems Administrator", "Network Engineer",
         "Identity Engineer", "Endpoint Engineer"),
    ),
    DepartmentSpec(
        "Human Resources", 4, "Chief People Officer",
        ("VP of People", "HR Director", "HR Manager"),
        ("HR Coordinator", "HR Business Partner", "Recruiter", "Senior Recruiter", "Compensation Analyst"),
    ),
    DepartmentSpec(
        "Data Science", 4, "VP of Data",
        ("Director of Data Science", "Data Science Manager", "Analytics Lead"),
        ("Data Analyst", "Data Scientist", "Senior Data Scientist", "Machine Learning Engineer", "Data Engineer"),
    ),
    DepartmentSpec(
        "Design", 3, "VP of Design",
        ("Director of Design", "Design Manager", "Design Lead"),
        ("Product Designer", "Senior Product Designer", "UX Researcher", "Visual Designer", "Content Designer"),
    ),
    DepartmentSpec(
        "Security", 3, "Chief Information Security Officer",
        ("Director of Security", "Security Manager", "Security Lead"),
        ("Security Analyst", "Security Engineer", "Senior Security Engineer", "Penetration Tester",
         "GRC Analyst"),
    ),
    DepartmentSpec(
        "Legal", 2, "General Counsel",
        ("Deputy General Counsel", "Legal Director", "Legal Manager"),
        ("Paralegal", "Corporate Counsel", "Senior Counsel", "Contracts Manager", "Compliance Analyst"),
    ),
    DepartmentSpec(
        "Procurement", 2, "VP of Procurement",
        ("Procurement Director", "Procurement Manager", "Sourcing Lead"),
        ("Buyer", "Senior Buyer", "Procurement Analyst", "Vendor Manager"),
    ),
    DepartmentSpec(
        "Facilities", 2, "Director of Facilities",
        ("Facilities Manager", "Workplace Manager", "Site Lead"),
        ("Facilities Coordinator", "Workplace Experience Specialist", "Office Manager", "Maintenance Technician"),
    ),
)  # fmt: skip

#: The CEO's department (not one of :data:`DEPARTMENTS`: nobody but the CEO is in it).
EXECUTIVE = "Executive"
CEO_TITLE = "Chief Executive Officer"

LOCATIONS: tuple[str, ...] = (
    "New York", "San Francisco", "Austin", "Toronto", "London", "Dublin", "Berlin", "Paris", "Madrid", "Stockholm",
    "Warsaw", "São Paulo", "Mexico City", "Bengaluru", "Singapore", "Tokyo", "Sydney", "Remote",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeviceModel:
    """A laptop model and how its vendor writes serial numbers (``serial_kind`` picks the generator)."""

    manufacturer: str
    model: str
    operating_system: str  # Intune: "Windows" | "macOS"
    os_versions: tuple[str, ...]
    serial_kind: str  # "dell" | "hp" | "lenovo" | "apple"
    weight: float


DEVICE_MODELS: tuple[DeviceModel, ...] = (
    DeviceModel("Dell Inc.", "Latitude 5440", "Windows", ("10.0.22631.3880", "10.0.22621.3737"), "dell", 18),
    DeviceModel("Dell Inc.", "Latitude 7440", "Windows", ("10.0.22631.3880", "10.0.22631.4037"), "dell", 12),
    DeviceModel("HP", "EliteBook 840 G10", "Windows", ("10.0.22631.3880", "10.0.19045.4651"), "hp", 14),
    DeviceModel("HP", "ZBook Firefly 14 G10", "Windows", ("10.0.22631.4037",), "hp", 5),
    DeviceModel("LENOVO", "ThinkPad T14 Gen 4", "Windows", ("10.0.22631.3880", "10.0.22621.3737"), "lenovo", 12),
    DeviceModel("LENOVO", "ThinkPad X1 Carbon Gen 11", "Windows", ("10.0.22631.4037",), "lenovo", 8),
    DeviceModel("Apple", "MacBook Pro (14-inch, 2023)", "macOS", ("14.5", "14.6.1"), "apple", 18),
    DeviceModel("Apple", "MacBook Air (M2, 2022)", "macOS", ("14.5", "13.6.7"), "apple", 13),
)
