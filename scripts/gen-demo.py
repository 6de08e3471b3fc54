#!/usr/bin/env python3
"""Writes config/demo/<cluster>/*.json: three EKS clusters as `aws ... --output json` prints them.

    python3 scripts/gen-demo.py            # rewrites config/demo/

The clusters follow the layouts of each tool (reference §2-§4 of eks-sg-baseline.md):

  shop-prod  console style, public endpoint,          eu-west-1, 111122223333
             drift: the EKS default remote-access group opens SSH to 0.0.0.0/0, and the
             NodePort rule on the cluster SG was widened from 30000-32767 to 0-65535 (10.0.0.0/8)
  payments   eksctl style,  public+private endpoint,  us-east-1, 444455556666
             clean: exactly what eksctl 0.175 creates (managed + unmanaged node group)
  ledger     terraform-aws-eks v20 style, private endpoint, eu-west-1, 111122223333
             drift: the node SG's kubelet rule (ingress_cluster_kubelet) was deleted;
             interface endpoints ec2, ecr.api, ecr.dkr, sts, logs and an S3 gateway

Every id is derived from a name, so the output is the same on every run. Output is indented
by 4 like the CLI's, keys in the order the CLI prints them.
"""

import base64
import hashlib
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "config", "demo")


def h(seed, n):
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def rid(prefix, seed):
    """An EC2 id: prefix, '-', 17 hex digits (new-style ids start with 0)."""
    return f"{prefix}-0{h(prefix + seed, 16)}"


def uuid(seed):
    x = h("uuid" + seed, 32)
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def cfn_suffix(seed, n=13):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    d = hashlib.sha256(("cfn" + seed).encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in d[:n])


def tags(pairs):
    return [{"Key": k, "Value": v} for k, v in pairs]


def write(cluster, name, doc):
    d = os.path.join(ROOT, cluster)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "w") as f:
        f.write(json.dumps(doc, indent=4, ensure_ascii=False))
        f.write("\n")


def cert(seed):
    body = base64.b64encode(hashlib.sha512(seed.encode()).digest() * 14).decode()
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    pem = f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"
    return base64.b64encode(pem.encode()).decode()


# --- security groups -------------------------------------------------------------------------

def permission(proto, ports, peers, account):
    p = {"IpProtocol": proto}
    if proto != "-1":
        p["FromPort"], p["ToPort"] = ports
    pairs, v4, v6, pls = [], [], [], []
    for kind, value, desc in peers:
        extra = {"Description": desc} if desc else {}
        if kind == "sg":
            pairs.append({**extra, "UserId": account, "GroupId": value})
        elif kind == "cidr":
            v4.append({**extra, "CidrIp": value})
        elif kind == "cidr6":
            v6.append({**extra, "CidrIpv6": value})
        elif kind == "pl":
            pls.append({**extra, "PrefixListId": value})
    p["UserIdGroupPairs"] = pairs
    p["IpRanges"] = v4
    p["Ipv6Ranges"] = v6
    p["PrefixListIds"] = pls
    return p


def permissions(rules, account):
    """EC2 merges rules of one protocol and port range into one IpPermission."""
    order, merged = [], {}
    for proto, ports, kind, value, desc in rules:
        key = (proto, ports)
        if key not in merged:
            order.append(key)
            merged[key] = []
        merged[key].append((kind, value, desc))
    return [permission(k[0], k[1], merged[k], account) for k in order]


ALL = ("-1", None)


def tcp(a, b=None):
    return ("tcp", (a, b if b is not None else a))


def udp(a, b=None):
    return ("udp", (a, b if b is not None else a))


class Group:
    def __init__(self, account, region, vpc, gid, name, description, tag_pairs):
        self.account, self.region, self.vpc = account, region, vpc
        self.id, self.name, self.description, self.tags = gid, name, description, tag_pairs
        self.ingress, self.egress = [], []

    def allow_in(self, traffic, kind, value, desc=None):
        self.ingress.append((traffic[0], traffic[1], kind, value, desc))
        return self

    def allow_out(self, traffic, kind, value, desc=None):
        self.egress.append((traffic[0], traffic[1], kind, value, desc))
        return self

    def default_egress(self):
        return self.allow_out(ALL, "cidr", "0.0.0.0/0")

    def json(self):
        doc = {
            "GroupId": self.id,
            "IpPermissionsEgress": permissions(self.egress, self.account),
        }
        if self.tags:
            doc["Tags"] = tags(self.tags)
        doc.update({
            "VpcId": self.vpc,
            "SecurityGroupArn": f"arn:aws:ec2:{self.region}:{self.account}:security-group/{self.id}",
            "OwnerId": self.account,
            "GroupName": self.name,
            "Description": self.description,
            "IpPermissions": permissions(self.ingress, self.account),
        })
        return doc


def default_vpc_group(account, region, vpc):
    g = Group(account, region, vpc, rid("sg", vpc + "default"), "default", "default VPC security group", [])
    return g.allow_in(ALL, "sg", g.id).default_egress()


EKS_CLUSTER_SG_DESCRIPTION = (
    "EKS created security group applied to ENI that is attached to EKS Control Plane master nodes, "
    "as well as any managed workloads."
)


def eks_cluster_group(account, region, vpc, cluster, numeric, extra_tags=()):
    name = f"eks-cluster-sg-{cluster}-{numeric}"
    g = Group(account, region, vpc, rid("sg", name), name, EKS_CLUSTER_SG_DESCRIPTION, [
        ("Name", name),
        *extra_tags,
        ("aws:eks:cluster-name", cluster),
        (f"kubernetes.io/cluster/{cluster}", "owned"),
    ])
    return g.allow_in(ALL, "sg", g.id).default_egress()


# --- EKS ------------------------------------------------------------------------------------

def describe_cluster(*, name, account, region, created, version, platform, vpc, subnets, cluster_sg,
                     additional, public, private, logging, tags_, role, service_cidr="10.100.0.0/16"):
    endpoint_id = h("endpoint" + name, 32).upper()
    cluster = {
        "name": name,
        "arn": f"arn:aws:eks:{region}:{account}:cluster/{name}",
        "createdAt": created,
        "version": version,
        "endpoint": f"https://{endpoint_id}.gr7.{region}.eks.amazonaws.com",
        "roleArn": f"arn:aws:iam::{account}:role/{role}",
        "resourcesVpcConfig": {
            "subnetIds": subnets,
            "securityGroupIds": additional,
            "clusterSecurityGroupId": cluster_sg,
            "vpcId": vpc,
            "endpointPublicAccess": public,
            "endpointPrivateAccess": private,
            "publicAccessCidrs": ["0.0.0.0/0"],
        },
        "kubernetesNetworkConfig": {
            "serviceIpv4Cidr": service_cidr,
            "ipFamily": "ipv4",
            "elasticLoadBalancing": {"enabled": False},
        },
        "logging": {
            "clusterLogging": (
                [{"types": logging, "enabled": True}] if logging else []
            ) + [{
                "types": [t for t in ["api", "audit", "authenticator", "controllerManager", "scheduler"] if t not in logging],
                "enabled": False,
            }]
        },
        "identity": {"oidc": {"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{endpoint_id}"}},
        "status": "ACTIVE",
        "certificateAuthority": {"data": cert(name)},
        "platformVersion": platform,
        "tags": dict(tags_),
        "health": {"issues": []},
        "accessConfig": {"authenticationMode": "API_AND_CONFIG_MAP"},
        "upgradePolicy": {"supportType": "STANDARD"},
    }
    return {"cluster": cluster}


def describe_nodegroup(*, cluster, name, account, region, created, modified, version, release, capacity,
                       scaling, instance_types, subnets, ami, role, labels=None, remote_access=None,
                       remote_sg=None, disk=None, launch_template=None, tags_=()):
    ng_uuid = uuid(cluster + name)
    ng = {
        "nodegroupName": name,
        "nodegroupArn": f"arn:aws:eks:{region}:{account}:nodegroup/{cluster}/{name}/{ng_uuid}",
        "clusterName": cluster,
        "version": version,
        "releaseVersion": release,
        "createdAt": created,
        "modifiedAt": modified,
        "status": "ACTIVE",
        "capacityType": capacity,
        "scalingConfig": {"minSize": scaling[0], "maxSize": scaling[1], "desiredSize": scaling[2]},
        "instanceTypes": instance_types,
        "subnets": subnets,
    }
    if remote_access:
        ng["remoteAccess"] = remote_access
    ng["amiType"] = ami
    ng["nodeRole"] = f"arn:aws:iam::{account}:role/{role}"
    ng["labels"] = labels or {}
    resources = {"autoScalingGroups": [{"name": asg_name(cluster, name)}]}
    if remote_sg:
        resources["remoteAccessSecurityGroup"] = remote_sg
    ng["resources"] = resources
    if disk:
        ng["diskSize"] = disk
    ng["health"] = {"issues": []}
    ng["updateConfig"] = {"maxUnavailable": 1}
    if launch_template:
        ng["launchTemplate"] = launch_template
    ng["tags"] = dict(tags_)
    return {"nodegroup": ng}


def asg_name(cluster, nodegroup):
    return f"eks-{nodegroup}-{uuid(cluster + nodegroup)}"


def remote_access_group(account, region, vpc, cluster, nodegroup):
    name = f"eks-remoteAccess-{uuid(cluster + nodegroup)}"
    return Group(account, region, vpc, rid("sg", name), name,
                 "Security group for all nodes in the nodeGroup to allow SSH access", [
                     ("eks", nodegroup),
                     ("eks:cluster-name", cluster),
                     ("eks:nodegroup-name", nodegroup),
                 ])


# --- EC2 odds and ends ----------------------------------------------------------------------

def describe_vpcs(account, vpc, cidr, name_tags, dhcp):
    return {"Vpcs": [{
        "OwnerId": account,
        "InstanceTenancy": "default",
        "CidrBlockAssociationSet": [{
            "AssociationId": rid("vpc-cidr-assoc", vpc),
            "CidrBlock": cidr,
            "CidrBlockState": {"State": "associated"},
        }],
        "IsDefault": False,
        "Tags": tags(name_tags),
        "BlockPublicAccessStates": {"InternetGatewayBlockMode": "off"},
        "VpcId": vpc,
        "State": "available",
        "CidrBlock": cidr,
        "DhcpOptionsId": dhcp,
    }]}


def launch_template_version(*, lt_id, lt_name, number, created, created_by, default, data):
    return {
        "LaunchTemplateId": lt_id,
        "LaunchTemplateName": lt_name,
        "VersionNumber": number,
        "CreateTime": created,
        "CreatedBy": created_by,
        "DefaultVersion": default,
        "LaunchTemplateData": data,
    }


def instance(*, account, region, az, subnet, vpc, seed, itype, ami, launched, ip, groups, tag_pairs, profile):
    iid = rid("i", seed)
    eni = rid("eni", seed)
    private_dns = f"ip-{ip.replace('.', '-')}.{region}.compute.internal"
    group_refs = [{"GroupId": gid, "GroupName": name} for gid, name in groups]
    return {
        "Architecture": "x86_64",
        "BlockDeviceMappings": [{
            "DeviceName": "/dev/xvda",
            "Ebs": {
                "AttachTime": launched,
                "DeleteOnTermination": True,
                "Status": "attached",
                "VolumeId": rid("vol", seed),
            },
        }],
        "ClientToken": uuid("token" + seed),
        "EbsOptimized": True,
        "EnaSupport": True,
        "Hypervisor": "xen",
        "IamInstanceProfile": {
            "Arn": f"arn:aws:iam::{account}:instance-profile/{profile}",
            "Id": "AIPA" + h("profile" + profile, 17).upper(),
        },
        "NetworkInterfaces": [{
            "Attachment": {
                "AttachTime": launched,
                "AttachmentId": rid("eni-attach", seed),
                "DeleteOnTermination": True,
                "DeviceIndex": 0,
                "Status": "attached",
                "NetworkCardIndex": 0,
            },
            "Description": "",
            "Groups": group_refs,
            "Ipv6Addresses": [],
            "MacAddress": ":".join(h("mac" + seed, 12)[i:i + 2] for i in range(0, 12, 2)),
            "NetworkInterfaceId": eni,
            "OwnerId": account,
            "PrivateDnsName": private_dns,
            "PrivateIpAddress": ip,
            "PrivateIpAddresses": [{"Primary": True, "PrivateDnsName": private_dns, "PrivateIpAddress": ip}],
            "SourceDestCheck": True,
            "Status": "in-use",
            "SubnetId": subnet,
            "VpcId": vpc,
            "InterfaceType": "interface",
        }],
        "RootDeviceName": "/dev/xvda",
        "RootDeviceType": "ebs",
        "SecurityGroups": group_refs,
        "SourceDestCheck": True,
        "Tags": tags(tag_pairs),
        "VirtualizationType": "hvm",
        "CpuOptions": {"CoreCount": 1, "ThreadsPerCore": 2},
        "CapacityReservationSpecification": {"CapacityReservationPreference": "open"},
        "HibernationOptions": {"Configured": False},
        "MetadataOptions": {
            "State": "applied",
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 2,
            "HttpEndpoint": "enabled",
            "HttpProtocolIpv6": "disabled",
            "InstanceMetadataTags": "disabled",
        },
        "EnclaveOptions": {"Enabled": False},
        "PlatformDetails": "Linux/UNIX",
        "UsageOperation": "RunInstances",
        "UsageOperationUpdateTime": launched,
        "PrivateDnsNameOptions": {
            "HostnameType": "ip-name",
            "EnableResourceNameDnsARecord": False,
            "EnableResourceNameDnsAAAARecord": False,
        },
        "MaintenanceOptions": {"AutoRecovery": "default"},
        "CurrentInstanceBootMode": "legacy-bios",
        "InstanceId": iid,
        "ImageId": ami,
        "State": {"Code": 16, "Name": "running"},
        "PrivateDnsName": private_dns,
        "PublicDnsName": "",
        "StateTransitionReason": "",
        "AmiLaunchIndex": 0,
        "ProductCodes": [],
        "InstanceType": itype,
        "LaunchTime": launched,
        "Placement": {"GroupName": "", "Tenancy": "default", "AvailabilityZone": az},
        "Monitoring": {"State": "disabled"},
        "SubnetId": subnet,
        "VpcId": vpc,
        "PrivateIpAddress": ip,
    }


def reservations(account, instances):
    return {"Reservations": [{
        "ReservationId": rid("r", i["InstanceId"]),
        "OwnerId": account,
        "RequesterId": "940372691376",
        "Groups": [],
        "Instances": [i],
    } for i in instances]}


# --- shop-prod: console, public -------------------------------------------------------------

def shop_prod():
    c, account, region = "shop-prod", "111122223333", "eu-west-1"
    vpc = rid("vpc", c)
    stack = "shop-prod-vpc"
    stack_id = f"arn:aws:cloudformation:{region}:{account}:stack/{stack}/{uuid(stack)}"
    subnets = {
        "PublicSubnet01": ("eu-west-1a", "192.168.0.0/18"),
        "PublicSubnet02": ("eu-west-1b", "192.168.64.0/18"),
        "PrivateSubnet01": ("eu-west-1a", "192.168.128.0/18"),
        "PrivateSubnet02": ("eu-west-1b", "192.168.192.0/18"),
    }
    subnet = {k: rid("subnet", c + k) for k in subnets}

    cluster_sg = eks_cluster_group(account, region, vpc, c, "1618493217")
    # Was `tcp 30000-32767 from 10.0.0.0/8` for the internal NLB; someone widened it.
    cluster_sg.allow_in(tcp(0, 65535), "cidr", "10.0.0.0/8", "NLB NodePorts from corp network")

    cp = Group(account, region, vpc, rid("sg", c + "ControlPlaneSecurityGroup"),
               f"{stack}-ControlPlaneSecurityGroup-{cfn_suffix(c + 'cp')}",
               "Cluster communication with worker nodes", [
                   ("aws:cloudformation:stack-name", stack),
                   ("aws:cloudformation:logical-id", "ControlPlaneSecurityGroup"),
                   ("aws:cloudformation:stack-id", stack_id),
               ]).default_egress()

    ssh = remote_access_group(account, region, vpc, c, "general")
    ssh.allow_in(tcp(22), "cidr", "0.0.0.0/0").default_egress()

    groups = [default_vpc_group(account, region, vpc), cluster_sg, cp, ssh]
    write(c, "describe-security-groups.json", {"SecurityGroups": [g.json() for g in sorted(groups, key=lambda g: g.id)]})

    write(c, "describe-cluster.json", describe_cluster(
        name=c, account=account, region=region, created="2023-05-09T14:02:17.281000+02:00",
        version="1.29", platform="eks.12", vpc=vpc,
        subnets=[subnet[k] for k in subnets], cluster_sg=cluster_sg.id, additional=[cp.id],
        public=True, private=False, logging=["audit"], tags_=[], role="eksClusterRole",
    ))

    private = [subnet["PrivateSubnet01"], subnet["PrivateSubnet02"]]
    common = dict(cluster=c, account=account, region=region, version="1.29",
                  release="1.29.3-20240531", subnets=private, ami="AL2_x86_64",
                  role="AmazonEKSNodeRole", disk=20)
    write(c, "describe-nodegroup-general.json", describe_nodegroup(
        name="general", created="2023-05-09T14:21:40.112000+02:00", modified="2024-06-12T10:44:03.530000+02:00",
        capacity="ON_DEMAND", scaling=(2, 6, 3), instance_types=["m6i.large"],
        remote_access={"ec2SshKey": "ops-eu-west-1"}, remote_sg=ssh.id, **common,
    ))
    write(c, "describe-nodegroup-spot.json", describe_nodegroup(
        name="spot", created="2023-11-21T09:12:55.007000+01:00", modified="2024-06-12T10:51:27.904000+02:00",
        capacity="SPOT", scaling=(0, 10, 2), instance_types=["m6i.large", "m5.large", "m5a.large"],
        labels={"workload": "batch"}, **common,
    ))

    nodes = []
    for ng, n, groups_ in (("general", 3, [cluster_sg, ssh]), ("spot", 2, [cluster_sg])):
        for i in range(n):
            az = "eu-west-1a" if i % 2 == 0 else "eu-west-1b"
            sn = subnet["PrivateSubnet01"] if i % 2 == 0 else subnet["PrivateSubnet02"]
            base = 128 if i % 2 == 0 else 192
            nodes.append(instance(
                account=account, region=region, az=az, subnet=sn, vpc=vpc, seed=f"{c}{ng}{i}",
                itype="m6i.large", ami="ami-0c3b2f4d8e9a61f07", launched="2024-06-12T08:47:19+00:00",
                ip=f"192.168.{base + 3 + i * 7}.{40 + i * 13}",
                groups=[(g.id, g.name) for g in groups_],
                profile=f"eks-{uuid(c + ng)}",
                tag_pairs=[
                    ("aws:ec2:fleet-id", f"fleet-{uuid('fleet' + c + ng)}"),
                    ("aws:autoscaling:groupName", asg_name(c, ng)),
                    ("eks:cluster-name", c),
                    ("aws:ec2launchtemplate:version", "1"),
                    ("k8s.io/cluster-autoscaler/enabled", "true"),
                    ("eks:nodegroup-name", ng),
                    (f"kubernetes.io/cluster/{c}", "owned"),
                    ("aws:ec2launchtemplate:id", rid("lt", c + ng)),
                    (f"k8s.io/cluster-autoscaler/{c}", "owned"),
                ],
            ))
    write(c, "describe-instances.json", reservations(account, nodes))
    write(c, "describe-vpcs.json", describe_vpcs(account, vpc, "192.168.0.0/16", [
        ("aws:cloudformation:logical-id", "VPC"),
        ("aws:cloudformation:stack-name", stack),
        ("Name", f"{stack}-VPC"),
        ("aws:cloudformation:stack-id", stack_id),
    ], rid("dopt", region + account)))


# --- payments: eksctl, public+private -------------------------------------------------------

def payments():
    c, account, region = "payments", "444455556666", "us-east-1"
    vpc = rid("vpc", c)
    cstack = f"eksctl-{c}-cluster"
    cstack_id = f"arn:aws:cloudformation:{region}:{account}:stack/{cstack}/{uuid(cstack)}"
    version_tags = [
        ("alpha.eksctl.io/cluster-name", c),
        ("eksctl.cluster.k8s.io/v1alpha1/cluster-name", c),
        ("alpha.eksctl.io/eksctl-version", "0.175.0"),
    ]

    def stack_tags(stack, stack_id, logical):
        return [
            ("aws:cloudformation:stack-name", stack),
            ("aws:cloudformation:logical-id", logical),
            ("aws:cloudformation:stack-id", stack_id),
        ]

    cluster_sg = eks_cluster_group(account, region, vpc, c, "1843207516")
    cp = Group(account, region, vpc, rid("sg", c + "ControlPlaneSecurityGroup"),
               f"{cstack}-ControlPlaneSecurityGroup-{cfn_suffix(c + 'cp')}",
               "Communication between the control plane and worker nodegroups", [
                   ("Name", f"{cstack}/ControlPlaneSecurityGroup"),
                   *version_tags,
                   ("alpha.eksctl.io/cluster-oidc-enabled", "true"),
                   *stack_tags(cstack, cstack_id, "ControlPlaneSecurityGroup"),
               ]).default_egress()
    shared = Group(account, region, vpc, rid("sg", c + "ClusterSharedNodeSecurityGroup"),
                   f"{cstack}-ClusterSharedNodeSecurityGroup-{cfn_suffix(c + 'shared')}",
                   "Communication between all nodes in the cluster", [
                       ("Name", f"{cstack}/ClusterSharedNodeSecurityGroup"),
                       *version_tags,
                       ("alpha.eksctl.io/cluster-oidc-enabled", "true"),
                       *stack_tags(cstack, cstack_id, "ClusterSharedNodeSecurityGroup"),
                   ])
    shared.allow_in(ALL, "sg", shared.id, "Allow nodes to communicate with each other (all ports)")
    shared.allow_in(ALL, "sg", cluster_sg.id, "Allow managed and unmanaged nodes to communicate with each other (all ports)")
    shared.default_egress()
    cluster_sg.allow_in(ALL, "sg", shared.id, "Allow unmanaged nodes to communicate with control plane (all ports)")

    ng = "ng-workers"
    nstack = f"eksctl-{c}-nodegroup-{ng}"
    nstack_id = f"arn:aws:cloudformation:{region}:{account}:stack/{nstack}/{uuid(nstack)}"
    ng_sg = Group(account, region, vpc, rid("sg", nstack + "SG"), f"{nstack}-SG-{cfn_suffix(nstack)}",
                  f"Communication between the control plane and worker nodes in group {ng}", [
                      (f"kubernetes.io/cluster/{c}", "owned"),
                      ("Name", f"{nstack}/SG"),
                      ("alpha.eksctl.io/nodegroup-name", ng),
                      ("alpha.eksctl.io/nodegroup-type", "unmanaged"),
                      ("eksctl.io/v1alpha2/nodegroup-name", ng),
                      *version_tags,
                      *stack_tags(nstack, nstack_id, "SG"),
                  ])
    ng_sg.allow_in(tcp(1025, 65535), "sg", cp.id,
                   f"[IngressInterCluster] Allow worker nodes in group {ng} to communicate with control plane (kubelet and workload TCP ports)")
    ng_sg.allow_in(tcp(443), "sg", cp.id,
                   f"[IngressInterClusterAPI] Allow worker nodes in group {ng} to communicate with control plane (workloads using HTTPS port, commonly used with extension API servers)")
    ng_sg.default_egress()
    cp.allow_out(tcp(1025, 65535), "sg", ng_sg.id,
                 f"Allow control plane to communicate with worker nodes in group {ng} (kubelet and workload TCP ports)")
    cp.allow_out(tcp(443), "sg", ng_sg.id,
                 f"Allow control plane to communicate with worker nodes in group {ng} (workloads using HTTPS port, commonly used with extension API servers)")
    cp.allow_in(tcp(443), "sg", ng_sg.id, f"Allow control plane to receive API requests from worker nodes in group {ng}")

    groups = [default_vpc_group(account, region, vpc), cluster_sg, cp, shared, ng_sg]
    write(c, "describe-security-groups.json", {"SecurityGroups": [g.json() for g in sorted(groups, key=lambda g: g.id)]})

    azs = ["us-east-1a", "us-east-1c", "us-east-1d"]
    public_subnets = [rid("subnet", c + "public" + az) for az in azs]
    private_subnets = [rid("subnet", c + "private" + az) for az in azs]
    cluster_tags = [*version_tags, ("alpha.eksctl.io/cluster-oidc-enabled", "true"),
                    ("aws:cloudformation:stack-name", cstack), ("aws:cloudformation:logical-id", "ControlPlane"),
                    ("aws:cloudformation:stack-id", cstack_id)]
    write(c, "describe-cluster.json", describe_cluster(
        name=c, account=account, region=region, created="2024-02-27T16:40:08.915000-05:00",
        version="1.29", platform="eks.8", vpc=vpc, subnets=public_subnets + private_subnets,
        cluster_sg=cluster_sg.id, additional=[cp.id], public=True, private=True,
        logging=["api", "audit", "authenticator"], tags_=sorted(cluster_tags),
        role=f"{cstack}-ServiceRole-{cfn_suffix(cstack + 'role')}",
    ))

    managed = "ng-managed"
    mstack = f"eksctl-{c}-nodegroup-{managed}"
    lt_id = rid("lt", mstack)
    write(c, f"describe-nodegroup-{managed}.json", describe_nodegroup(
        cluster=c, name=managed, account=account, region=region,
        created="2024-02-27T17:02:51.388000-05:00", modified="2024-05-14T11:20:36.011000-04:00",
        version="1.29", release="1.29.0-20240424", capacity="ON_DEMAND", scaling=(2, 4, 2),
        instance_types=["m5.xlarge"], subnets=private_subnets, ami="AL2_x86_64",
        role=f"{mstack}-NodeInstanceRole-{cfn_suffix(mstack + 'role')}",
        labels={"alpha.eksctl.io/cluster-name": c, "alpha.eksctl.io/nodegroup-name": managed},
        launch_template={"name": mstack, "version": "1", "id": lt_id},
        tags_=sorted([("alpha.eksctl.io/nodegroup-name", managed), ("alpha.eksctl.io/nodegroup-type", "managed"),
                      *version_tags]),
    ))
    workers_lt = rid("lt", nstack)
    created_by = f"arn:aws:sts::{account}:assumed-role/platform-admin/eksctl-{h(c, 6)}"
    write(c, "describe-launch-template-versions.json", {"LaunchTemplateVersions": [
        launch_template_version(
            lt_id=lt_id, lt_name=mstack, number=1, created="2024-02-27T22:02:34+00:00",
            created_by=created_by, default=True, data={
                "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"Iops": 3000, "VolumeSize": 80, "VolumeType": "gp3", "Throughput": 125}}],
                "TagSpecifications": [{"ResourceType": "instance", "Tags": tags([
                    ("Name", f"{c}-{managed}-Node"),
                    ("alpha.eksctl.io/nodegroup-name", managed),
                    ("alpha.eksctl.io/nodegroup-type", "managed"),
                ])}],
                "SecurityGroupIds": [cluster_sg.id],
                "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
            }),
        launch_template_version(
            lt_id=workers_lt, lt_name=nstack, number=1, created="2024-02-27T22:05:12+00:00",
            created_by=created_by, default=True, data={
                "IamInstanceProfile": {"Arn": f"arn:aws:iam::{account}:instance-profile/{nstack}-NodeInstanceProfile-{cfn_suffix(nstack + 'ip')}"},
                "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"Encrypted": False, "Iops": 3000, "VolumeSize": 80, "VolumeType": "gp3", "Throughput": 125}}],
                "NetworkInterfaces": [{"DeviceIndex": 0, "Groups": [shared.id, ng_sg.id], "NetworkCardIndex": 0}],
                "ImageId": "ami-0a5e1c3b7d9f24e68",
                "InstanceType": "m5.large",
                "TagSpecifications": [{"ResourceType": "instance", "Tags": tags([
                    ("Name", f"{c}-{ng}-Node"),
                    ("alpha.eksctl.io/nodegroup-name", ng),
                    ("alpha.eksctl.io/nodegroup-type", "unmanaged"),
                ])}],
                "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
            }),
    ]})

    nodes = []
    for i in range(2):
        az, sn = azs[i], private_subnets[i]
        nodes.append(instance(
            account=account, region=region, az=az, subnet=sn, vpc=vpc, seed=f"{c}{managed}{i}",
            itype="m5.xlarge", ami="ami-0a5e1c3b7d9f24e68", launched="2024-05-14T15:09:41+00:00",
            ip=f"192.168.{96 + 32 * i + 5}.{17 + 40 * i}", groups=[(cluster_sg.id, cluster_sg.name)],
            profile=f"eks-{uuid(c + managed)}",
            tag_pairs=[
                ("alpha.eksctl.io/nodegroup-type", "managed"),
                ("aws:autoscaling:groupName", asg_name(c, managed)),
                ("eks:cluster-name", c),
                ("Name", f"{c}-{managed}-Node"),
                ("aws:ec2launchtemplate:version", "1"),
                ("eks:nodegroup-name", managed),
                (f"kubernetes.io/cluster/{c}", "owned"),
                ("alpha.eksctl.io/nodegroup-name", managed),
                ("aws:ec2launchtemplate:id", rid("lt", c + managed + "eks")),
            ],
        ))
    workers_asg = f"{nstack}-NodeGroup-{cfn_suffix(nstack + 'asg')}"
    for i in range(3):
        az, sn = azs[i], private_subnets[i]
        nodes.append(instance(
            account=account, region=region, az=az, subnet=sn, vpc=vpc, seed=f"{c}{ng}{i}",
            itype="m5.large", ami="ami-0a5e1c3b7d9f24e68", launched="2024-05-14T15:31:02+00:00",
            ip=f"192.168.{96 + 32 * i + 11}.{201 - 30 * i}",
            groups=[(shared.id, shared.name), (ng_sg.id, ng_sg.name)],
            profile=f"{nstack}-NodeInstanceProfile-{cfn_suffix(nstack + 'ip')}",
            tag_pairs=[
                ("aws:cloudformation:stack-name", nstack),
                ("alpha.eksctl.io/nodegroup-type", "unmanaged"),
                ("aws:autoscaling:groupName", workers_asg),
                ("aws:cloudformation:logical-id", "NodeGroup"),
                ("Name", f"{c}-{ng}-Node"),
                ("alpha.eksctl.io/cluster-name", c),
                ("aws:ec2launchtemplate:version", "1"),
                ("eksctl.cluster.k8s.io/v1alpha1/cluster-name", c),
                (f"kubernetes.io/cluster/{c}", "owned"),
                ("alpha.eksctl.io/nodegroup-name", ng),
                ("aws:cloudformation:stack-id", nstack_id),
                ("aws:ec2launchtemplate:id", workers_lt),
                ("alpha.eksctl.io/eksctl-version", "0.175.0"),
            ],
        ))
    write(c, "describe-instances.json", reservations(account, nodes))
    write(c, "describe-vpcs.json", describe_vpcs(account, vpc, "192.168.0.0/16", [
        ("Name", f"{cstack}/VPC"),
        *version_tags,
        ("aws:cloudformation:stack-name", cstack),
        ("aws:cloudformation:logical-id", "VPC"),
        ("aws:cloudformation:stack-id", cstack_id),
    ], rid("dopt", region + account)))


# --- ledger: terraform-aws-eks v20, private -------------------------------------------------

def ledger():
    c, account, region = "ledger", "111122223333", "eu-west-1"
    vpc = rid("vpc", c)
    var_tags = [("Environment", "prod"), ("Team", "ledger"), ("Terraform", "true")]
    stamp = "20240611091517380300000"  # terraform's unique-id prefix for one apply

    cluster_sg = eks_cluster_group(account, region, vpc, c, "2017459384", extra_tags=var_tags)
    cp = Group(account, region, vpc, rid("sg", c + "cluster"), f"{c}-cluster-{stamp}002",
               "EKS cluster security group", [*var_tags, ("Name", f"{c}-cluster")])
    node = Group(account, region, vpc, rid("sg", c + "node"), f"{c}-node-{stamp}003",
                 "EKS node shared security group",
                 [*var_tags, ("Name", f"{c}-node"), (f"kubernetes.io/cluster/{c}", "owned")])
    cp.allow_in(tcp(443), "sg", node.id, "Node groups to cluster API")
    node.allow_in(tcp(443), "sg", cp.id, "Cluster API to node groups")
    # ingress_cluster_kubelet (tcp 10250 from the cluster SG) was deleted by hand.
    node.allow_in(tcp(53), "sg", node.id, "Node to node CoreDNS")
    node.allow_in(udp(53), "sg", node.id, "Node to node CoreDNS UDP")
    node.allow_in(tcp(1025, 65535), "sg", node.id, "Node to node ingress on ephemeral ports")
    for port in (4443, 6443, 8443, 9443):
        node.allow_in(tcp(port), "sg", cp.id, f"Cluster API to node {port}/tcp webhook")
    node.allow_out(ALL, "cidr", "0.0.0.0/0", "Allow all egress")

    vpce = Group(account, region, vpc, rid("sg", c + "vpce"), "vpc-endpoints-20240611090844216100000001",
                 "VPC endpoint security group", [*var_tags, ("Name", f"{c}-vpc-endpoints")])
    vpce.allow_in(tcp(443), "cidr", "10.20.0.0/16", "HTTPS from VPC")

    groups = [default_vpc_group(account, region, vpc), cluster_sg, cp, node, vpce]
    write(c, "describe-security-groups.json", {"SecurityGroups": [g.json() for g in sorted(groups, key=lambda g: g.id)]})

    azs = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    private_subnets = [rid("subnet", c + "private" + az) for az in azs]
    write(c, "describe-cluster.json", describe_cluster(
        name=c, account=account, region=region, created="2024-06-11T11:09:19.731000+02:00",
        version="1.30", platform="eks.6", vpc=vpc, subnets=private_subnets,
        cluster_sg=cluster_sg.id, additional=[cp.id], public=False, private=True,
        logging=["api", "audit", "authenticator"],
        tags_=[("Environment", "prod"), ("Team", "ledger"), ("Terraform", "true"), ("terraform-aws-modules", "eks")],
        role=f"{c}-cluster-20240611090859162700000001", service_cidr="172.20.0.0/16",
    ))

    lt_default = rid("lt", c + "default")
    lt_batch = rid("lt", c + "batch")
    managed = "default-20240611091529154200000009"  # the module's node_group_name_prefix
    write(c, f"describe-nodegroup-{managed}.json", describe_nodegroup(
        cluster=c, name=managed, account=account, region=region,
        created="2024-06-11T11:15:31.502000+02:00", modified="2024-09-03T16:27:48.215000+02:00",
        version="1.30", release="1.30.2-20240904", capacity="ON_DEMAND", scaling=(3, 9, 3),
        instance_types=["m6i.xlarge"], subnets=private_subnets, ami="AL2023_x86_64_STANDARD",
        role="default-eks-node-group-20240611090901373500000004",
        launch_template={"name": "default-20240611091523946900000007", "version": "1", "id": lt_default},
        tags_=[*var_tags, ("Name", "default")],
    ))
    created_by = f"arn:aws:sts::{account}:assumed-role/terraform-ci/aws-go-sdk-1718097092847362113"
    write(c, "describe-launch-template-versions.json", {"LaunchTemplateVersions": [
        launch_template_version(
            lt_id=lt_default, lt_name="default-20240611091523946900000007", number=1,
            created="2024-06-11T09:15:24+00:00", created_by=created_by, default=True, data={
                "TagSpecifications": [
                    {"ResourceType": "instance", "Tags": tags([*var_tags, ("Name", "default")])},
                    {"ResourceType": "volume", "Tags": tags([*var_tags, ("Name", "default")])},
                    {"ResourceType": "network-interface", "Tags": tags([*var_tags, ("Name", "default")])},
                ],
                "SecurityGroupIds": [node.id],
                "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2, "HttpEndpoint": "enabled", "InstanceMetadataTags": "disabled"},
                "Monitoring": {"Enabled": True},
            }),
        launch_template_version(
            lt_id=lt_batch, lt_name="batch-20240611091523951100000008", number=1,
            created="2024-06-11T09:15:24+00:00", created_by=created_by, default=True, data={
                "IamInstanceProfile": {"Arn": f"arn:aws:iam::{account}:instance-profile/batch-20240611090906028100000006"},
                "ImageId": "ami-07f1e25b4c9d3a860",
                "InstanceType": "c6i.2xlarge",
                "TagSpecifications": [{"ResourceType": "instance", "Tags": tags([*var_tags, ("Name", "batch")])}],
                "SecurityGroupIds": [node.id],
                "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2, "HttpEndpoint": "enabled"},
                "UserData": base64.b64encode(b"#!/bin/bash\nset -e\n/etc/eks/bootstrap.sh ledger --apiserver-endpoint https://"
                                             + h("endpoint" + c, 32).upper().encode()
                                             + b".gr7.eu-west-1.eks.amazonaws.com --b64-cluster-ca $B64_CLUSTER_CA\n").decode(),
            }),
    ]})

    nodes = []
    for i in range(3):
        nodes.append(instance(
            account=account, region=region, az=azs[i], subnet=private_subnets[i], vpc=vpc, seed=f"{c}default{i}",
            itype="m6i.xlarge", ami="ami-0e2d7b6a91f4c3b58", launched="2024-09-03T14:22:10+00:00",
            ip=f"10.20.{i * 16 + 2}.{60 + i * 21}", groups=[(node.id, node.name)],
            profile=f"eks-{uuid(c + managed)}",
            tag_pairs=[
                ("Environment", "prod"),
                ("aws:autoscaling:groupName", asg_name(c, managed)),
                ("eks:cluster-name", c),
                ("Name", "default"),
                ("Team", "ledger"),
                ("aws:ec2launchtemplate:version", "1"),
                ("eks:nodegroup-name", managed),
                (f"kubernetes.io/cluster/{c}", "owned"),
                ("Terraform", "true"),
                ("aws:ec2launchtemplate:id", rid("lt", c + managed + "eks")),
            ],
        ))
    batch_asg = "batch-20240611091533116500000011"
    for i in range(2):
        nodes.append(instance(
            account=account, region=region, az=azs[i], subnet=private_subnets[i], vpc=vpc, seed=f"{c}batch{i}",
            itype="c6i.2xlarge", ami="ami-07f1e25b4c9d3a860", launched="2024-09-18T02:00:37+00:00",
            ip=f"10.20.{i * 16 + 9}.{133 + i * 5}", groups=[(node.id, node.name)],
            profile="batch-20240611090906028100000006",
            tag_pairs=[
                ("Environment", "prod"),
                ("aws:autoscaling:groupName", batch_asg),
                ("Name", "batch"),
                ("Team", "ledger"),
                ("aws:ec2launchtemplate:version", "1"),
                (f"kubernetes.io/cluster/{c}", "owned"),
                ("Terraform", "true"),
                ("aws:ec2launchtemplate:id", lt_batch),
            ],
        ))
    write(c, "describe-instances.json", reservations(account, nodes))

    route_tables = [rid("rtb", c + "private" + az) for az in azs]
    endpoints = []
    for service in ("ec2", "ecr.api", "ecr.dkr", "logs", "sts"):
        eid = rid("vpce", c + service)
        enis = [rid("eni", c + service + az) for az in azs]
        host = f"{service}.{region}.amazonaws.com"
        zone = "Z" + h("zone" + c + service, 13).upper()
        endpoints.append({
            "VpcEndpointId": eid,
            "VpcEndpointType": "Interface",
            "VpcId": vpc,
            "ServiceName": f"com.amazonaws.{region}.{service}",
            "State": "available",
            "PolicyDocument": "{\n  \"Statement\": [\n    {\n      \"Action\": \"*\", \n      \"Effect\": \"Allow\", \n      \"Principal\": \"*\", \n      \"Resource\": \"*\"\n    }\n  ]\n}",
            "RouteTableIds": [],
            "SubnetIds": private_subnets,
            "Groups": [{"GroupId": vpce.id, "GroupName": vpce.name}],
            "IpAddressType": "ipv4",
            "DnsOptions": {"DnsRecordIpType": "ipv4"},
            "PrivateDnsEnabled": True,
            "RequesterManaged": False,
            "NetworkInterfaceIds": enis,
            "DnsEntries": [
                {"DnsName": f"{eid}-{h('dns' + eid, 8)}.{host.replace('.amazonaws.com', '')}.vpce.amazonaws.com", "HostedZoneId": "Z38GZ743OKFT7T"},
                *[{"DnsName": f"{eid}-{h('dns' + eid, 8)}-{az}.{host.replace('.amazonaws.com', '')}.vpce.amazonaws.com", "HostedZoneId": "Z38GZ743OKFT7T"} for az in azs],
                {"DnsName": host, "HostedZoneId": zone},
            ],
            "CreationTimestamp": "2024-06-11T09:08:51.402000+00:00",
            "Tags": tags([*var_tags, ("Name", f"{c}-{service.replace('.', '-')}")]),
            "OwnerId": account,
        })
    endpoints.append({
        "VpcEndpointId": rid("vpce", c + "s3"),
        "VpcEndpointType": "Gateway",
        "VpcId": vpc,
        "ServiceName": f"com.amazonaws.{region}.s3",
        "State": "available",
        "PolicyDocument": "{\"Version\":\"2008-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"*\",\"Resource\":\"*\"}]}",
        "RouteTableIds": route_tables,
        "SubnetIds": [],
        "Groups": [],
        "IpAddressType": "ipv4",
        "PrivateDnsEnabled": False,
        "RequesterManaged": False,
        "NetworkInterfaceIds": [],
        "DnsEntries": [],
        "CreationTimestamp": "2024-06-11T09:08:49.118000+00:00",
        "Tags": tags([*var_tags, ("Name", f"{c}-s3")]),
        "OwnerId": account,
    })
    endpoints.sort(key=lambda e: e["VpcEndpointId"])
    write(c, "describe-vpc-endpoints.json", {"VpcEndpoints": endpoints})

    write(c, "describe-vpcs.json", describe_vpcs(account, vpc, "10.20.0.0/16", [
        *var_tags, ("Name", f"{c}-vpc"),
    ], rid("dopt", region + account)))

    # The AWS-managed lists of eu-west-1 (describe-prefix-lists shows the gateway-endpoint ones).
    write(c, "describe-prefix-lists.json", {"PrefixLists": [
        {"PrefixListId": "pl-6da54004", "PrefixListName": f"com.amazonaws.{region}.s3",
         "Cidrs": ["3.5.64.0/21", "3.5.72.0/23", "52.218.0.0/17", "52.92.0.0/17"]},
        {"PrefixListId": "pl-6fa54006", "PrefixListName": f"com.amazonaws.{region}.dynamodb",
         "Cidrs": ["52.119.240.0/21", "52.94.26.0/23", "52.94.5.0/24"]},
    ]})
    write(c, "describe-managed-prefix-lists.json", {"PrefixLists": [
        {"PrefixListId": "pl-6fa54006", "AddressFamily": "IPv4", "State": "create-complete",
         "PrefixListArn": f"arn:aws:ec2:{region}:aws:prefix-list/pl-6fa54006",
         "PrefixListName": f"com.amazonaws.{region}.dynamodb", "Tags": [], "OwnerId": "AWS"},
        {"PrefixListId": "pl-6da54004", "AddressFamily": "IPv4", "State": "create-complete",
         "PrefixListArn": f"arn:aws:ec2:{region}:aws:prefix-list/pl-6da54004",
         "PrefixListName": f"com.amazonaws.{region}.s3", "Tags": [], "OwnerId": "AWS"},
        {"PrefixListId": "pl-4fa04526", "AddressFamily": "IPv4", "State": "create-complete",
         "PrefixListArn": f"arn:aws:ec2:{region}:aws:prefix-list/pl-4fa04526",
         "PrefixListName": "com.amazonaws.global.cloudfront.origin-facing", "Tags": [], "OwnerId": "AWS"},
        {"PrefixListId": rid("pl", "corp-vpn"), "AddressFamily": "IPv4", "State": "create-complete",
         "PrefixListArn": f"arn:aws:ec2:{region}:{account}:prefix-list/{rid('pl', 'corp-vpn')}",
         "PrefixListName": "corp-vpn", "MaxEntries": 10, "Version": 3,
         "Tags": tags([("Terraform", "true")]), "OwnerId": account},
    ]})


def main():
    if len(sys.argv) > 1:
        sys.exit(__doc__)
    shop_prod()
    payments()
    ledger()


if __name__ == "__main__":
    main()
