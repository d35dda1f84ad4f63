"""The slice of the Active Directory schema the AD simulator serves, as OpenLDAP schema text.

slapd's own ``core``, ``cosine`` and ``inetorgperson`` schemas already define ``cn``, ``sn``, ``givenName``,
``title``, ``mail``, ``manager`` (DN syntax), ``displayName``, ``person``, ``organizationalPerson`` and ``referral``;
this adds the AD attributes under their real Microsoft OIDs and AD's ``user`` class (``SUP organizationalPerson``,
so an entry's objectClass is ``top/person/organizationalPerson/user`` as on a DC) and ``computer`` (``SUP user``).
Sources, Microsoft's AD schema reference (https://learn.microsoft.com/en-us/windows/win32/adschema/):

- ``User`` class (c-user): subclass of organizationalPerson, objectCategory ``CN=Person,CN=Schema,CN=Configuration,
  <forest>``; ``Computer`` (c-computer): subclass of user, objectCategory ``CN=Computer,...``.
- ``Object-Category`` (a-objectcategory): DN syntax, single-valued. AD expands the short form in filters
  (``(objectCategory=person)``); slapd cannot, so Nexus filters on ``sAMAccountType`` instead (below).
- ``SAM-Account-Type`` (a-samaccounttype): 805306368 (SAM_NORMAL_USER_ACCOUNT) for user accounts, 805306369
  (SAM_MACHINE_ACCOUNT) for computers; indexed on a DC, the usual fast "people" filter.
- ``User-Account-Control`` (a-useraccountcontrol): bit 0x2 ACCOUNTDISABLE; INTEGER here so slapd evaluates the AD
  bitwise rule ``(userAccountControl:1.2.840.113556.1.4.803:=2)`` natively (OpenLDAP's integerBitAndMatch).
- ``Account-Expires`` (a-accountexpires) and ``Last-Logon-Timestamp`` (a-lastlogontimestamp): Integer8 FILETIMEs
  (:mod:`clients.ad.filetime`), INTEGER here.
- The root DSE's ``defaultNamingContext``, ``configurationNamingContext``, ``schemaNamingContext`` and
  ``rootDomainNamingContext`` (https://learn.microsoft.com/en-us/windows/win32/adschema/rootdse): AD gives these
  operational attributes no OID, so they are declared under OpenLDAP's experimental arc (1.3.6.1.4.1.4203.666).

One deliberate simplification, invisible to Nexus' client: ``objectGUID`` is stored as its string form (AD: 16 raw
bytes). And slapd's ``person`` requires ``sn`` (AD's does not): the built-in accounts carry one.
"""

from __future__ import annotations

#: Schema files shipped with slapd that the generated config includes, in dependency order.
SYSTEM_SCHEMAS = ("core.schema", "cosine.schema", "inetorgperson.schema")

#: Directory string, case-insensitive, as AD's "Unicode String" attributes compare.
_STR = "EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15"
_INT = "EQUALITY integerMatch ORDERING integerOrderingMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE"
_DN = "EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 SINGLE-VALUE"

AD_SCHEMA = f"""\
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName' {_STR} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName' {_STR} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.141 NAME 'department' {_STR} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.35 NAME 'employeeID' {_STR} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.210 NAME 'proxyAddresses' {_STR} )
attributetype ( 1.2.840.113556.1.4.2 NAME 'objectGUID' {_STR} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.782 NAME 'objectCategory' {_DN} )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl' {_INT} )
attributetype ( 1.2.840.113556.1.4.302 NAME 'sAMAccountType' {_INT} )
attributetype ( 1.2.840.113556.1.4.159 NAME 'accountExpires' {_INT} )
attributetype ( 1.2.840.113556.1.4.1696 NAME 'lastLogonTimestamp' {_INT} )
attributetype ( 1.3.6.1.4.1.4203.666.11.250.1 NAME 'defaultNamingContext' {_DN} )
attributetype ( 1.3.6.1.4.1.4203.666.11.250.2 NAME 'configurationNamingContext' {_DN} )
attributetype ( 1.3.6.1.4.1.4203.666.11.250.3 NAME 'schemaNamingContext' {_DN} )
attributetype ( 1.3.6.1.4.1.4203.666.11.250.4 NAME 'rootDomainNamingContext' {_DN} )
attributetype ( 1.2.840.113556.1.4.619 NAME 'dNSHostName' {_STR} SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP organizationalPerson STRUCTURAL
  MAY ( sAMAccountName $ userPrincipalName $ mail $ displayName $ givenName $ title $
        department $ manager $ employeeID $ userAccountControl $ proxyAddresses $ objectGUID $
        objectCategory $ sAMAccountType $ accountExpires $ lastLogonTimestamp $ userPassword ) )
objectclass ( 1.2.840.113556.1.3.30 NAME 'computer' SUP user STRUCTURAL MAY dNSHostName )
objectclass ( 1.2.840.113556.1.3.23 NAME 'container' SUP top STRUCTURAL
  MUST cn MAY description )
"""

#: Attributes indexed for equality: what Nexus looks people up by (the rest is scanned, which is fine).
EQUALITY_INDEXES = (
    "objectClass",
    "objectCategory",
    "sAMAccountType",
    "mail",
    "userPrincipalName",
    "sAMAccountName",
    "employeeID",
    "proxyAddresses",
)
