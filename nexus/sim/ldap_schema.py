"""The slice of the Active Directory schema the AD simulator serves, as OpenLDAP schema text.

slapd's own ``core``, ``cosine`` and ``inetorgperson`` schemas already define ``cn``, ``sn``, ``givenName``,
``title``, ``mail``, ``manager`` (DN syntax) and ``displayName``; this adds the AD attributes under their real
Microsoft OIDs and a structural ``user`` class. ``userAccountControl`` has INTEGER syntax so slapd evaluates the
AD bitwise rule ``(userAccountControl:1.2.840.113556.1.4.803:=2)`` natively (OpenLDAP's integerBitAndMatch).

Two deliberate simplifications, both invisible to Nexus' client:
- ``objectGUID`` is stored as its string form (AD: 16 raw bytes).
- ``objectCategory`` is a plain string holding ``person`` (AD: a DN whose short name ``person`` AD expands in
  filters). That keeps the AD idiom ``(&(objectCategory=person)(objectClass=user))``, which skips computer
  accounts on a real domain, working unchanged against the simulator.
"""

from __future__ import annotations

#: Schema files shipped with slapd that the generated config includes, in dependency order.
SYSTEM_SCHEMAS = ("core.schema", "cosine.schema", "inetorgperson.schema")

#: Directory string, case-insensitive, as AD's "Unicode String" attributes compare.
_STR = "EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15"

AD_SCHEMA = f"""\
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName' {_STR} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName' {_STR} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.141 NAME 'department' {_STR} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.35 NAME 'employeeID' {_STR} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.210 NAME 'proxyAddresses' {_STR} )
attributetype ( 1.2.840.113556.1.4.2 NAME 'objectGUID' {_STR} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.782 NAME 'objectCategory' {_STR} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
  EQUALITY integerMatch ORDERING integerOrderingMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP top STRUCTURAL
  MUST cn
  MAY ( sAMAccountName $ userPrincipalName $ mail $ displayName $ givenName $ sn $ title $
        department $ manager $ employeeID $ userAccountControl $ proxyAddresses $ objectGUID $
        objectCategory $ userPassword $ description ) )
objectclass ( 1.2.840.113556.1.3.23 NAME 'container' SUP top STRUCTURAL
  MUST cn MAY description )
"""

#: Attributes indexed for equality: what Nexus looks people up by (the rest is scanned, which is fine).
EQUALITY_INDEXES = (
    "objectClass",
    "objectCategory",
    "mail",
    "userPrincipalName",
    "sAMAccountName",
    "employeeID",
    "proxyAddresses",
)
